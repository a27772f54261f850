"""The package's layers import downward only, and no module imports itself in a circle.

The layers, lowest first, as the architecture guide draws them (``docs/design.md``,
"Layers"):

====  ==========================================  =========================================
rank  modules                                     owns
====  ==========================================  =========================================
0     ``errors``                                  the error hierarchy and exit codes
1     ``clock``, ``ids``, ``version``             time, identifiers, the package version
2     ``storage``                                 bytes on disk: frames, WAL, locks, blobs
3     ``domain``                                  workflows, sessions, leases, recovery
4     ``plugins``                                 hook specs, the plugin manager, built-ins
5     ``adapters``, ``engine``                    one agent harness each; the durable runner
6     ``cli``, ``__main__``                       the command line
====  ==========================================  =========================================

``claude_state/__init__.py`` is the public facade: it re-exports lazily from every layer
and nothing inside the package imports it, so it stands above them all.

Every import counts, at module level or inside a function (a lazy import is still a
dependency: it runs, just later); imports under ``if TYPE_CHECKING:`` count too, since a
type named from a higher layer is a dependency a reader has to follow. Importing a
module implicitly imports its parent packages; those edges are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "claude_state"

RANKS: tuple[tuple[str, int], ...] = (
    ("claude_state.errors", 0),
    ("claude_state.clock", 1),
    ("claude_state.ids", 1),
    ("claude_state.version", 1),
    ("claude_state.storage", 2),
    ("claude_state.domain", 3),
    ("claude_state.plugins", 4),
    ("claude_state.engine", 5),
    ("claude_state.adapters", 5),
    ("claude_state.cli", 6),
    ("claude_state.__main__", 6),
    ("claude_state", 7),  # the facade
)


def rank(module: str) -> int:
    """The layer of *module* (the longest matching prefix in :data:`RANKS`)."""
    best = ("", -1)
    for prefix, r in RANKS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[0]):
            best = (prefix, r)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to RANKS and docs/design.md")
    return best[1]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # "from pkg import mod" depends on pkg.mod when that is a module
                targets = [
                    f"{src}.{a.name}" if f"{src}.{a.name}" in files else src for a in node.names
                ]
            for target in targets:
                if target in files and target != mod:
                    graph[mod].add(target)
    return graph


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every edge from a lower layer to a higher one, as ``a (r) -> b (r)``."""
    out = []
    for mod, targets in sorted(graph.items()):
        for target in sorted(targets):
            if rank(target) > rank(mod):
                out.append(f"{mod} ({rank(mod)}) -> {target} ({rank(target)})")
    return out


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_upward_import() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    """Control: the real graph with one upward edge and one circle added is refused."""
    real = import_graph()
    graph = {k: set(v) for k, v in real.items()}
    graph["claude_state.storage.wal"].add("claude_state.domain.store")
    assert set(upward_imports(graph)) - set(upward_imports(real)) == {
        "claude_state.storage.wal (2) -> claude_state.domain.store (3)"
    }
    graph["claude_state.storage.layout"].add("claude_state.storage.wal")
    assert any(
        {"claude_state.storage.wal", "claude_state.storage.layout"} <= set(c) for c in cycles(graph)
    )


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """Control for the reader: an import inside a function and a relative one count."""
    pkg = tmp_path / "claude_state"
    (pkg / "storage").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "storage" / "__init__.py").write_text("")
    (pkg / "storage" / "a.py").write_text("def f():\n    from ..errors import X\n")
    (pkg / "storage" / "b.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph["claude_state.storage.a"] == {"claude_state.errors"}
    assert graph["claude_state.storage.b"] == {"claude_state.storage.a"}
