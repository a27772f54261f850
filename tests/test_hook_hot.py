"""The hook's hot path imports nothing heavy (docs/hooks.md, "The hot path").

The check runs the hot path in a fresh interpreter started with ``-S`` (no ``site``, so
no ``.pth`` file such as an editable install's finder pre-imports ``re`` and hides
what the hot path itself loads), with ``sys.path`` set by hand, and lists the modules
that handling a ``PreToolUse`` event added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hookutil import SID, event

REPO = str(Path(__file__).resolve().parents[1])
SITE = sysconfig.get_paths()["purelib"]
#: Modules the hot path must never load (each costs milliseconds of start-up).
FORBIDDEN = frozenset(
    {
        "json",
        "re",
        "orjson",
        "pluggy",
        "zstandard",
        "psutil",
        "importlib.metadata",
        "typing",
        "dataclasses",
        "inspect",
        "pathlib",
        "subprocess",
        "logging",
        "datetime",
        "socket",
        "traceback",
        # ~0.2 ms: the hot path's modules spell annotations that name a type imported
        # only for type checking as strings instead of `from __future__ import annotations`
        "__future__",
    }
)

PROBE = """
import sys
sys.path[:0] = {paths!r}
data = {data!r}
before = set(sys.modules)
{pre}
from claude_state.adapters.claude_code.hot import handle
code, out = handle(data, None, {{"CLAUDE_STATE_DIR": {state!r}, "CLAUDE_STATE_STRICT": "1"}})
new = sorted(set(sys.modules) - before)
import json as _j
sys.stdout.write(_j.dumps({{"code": code, "out": out.decode(), "new": new}}))
"""


def _probe(tmp: Path, data: bytes, pre: str = "") -> dict:
    code = PROBE.format(paths=[REPO, SITE], data=data, state=str(tmp / "state"), pre=pre)
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def _heavy(new: list[str]) -> set[str]:
    return {m for m in new if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN - {"importlib"}}


PRE_TOOL = event(
    "PreToolUse",
    tool_name="Read",
    tool_use_id="r1",
    tool_input={"file_path": "/home/dev/shop/payments/client.py"},
)
POST_TOOL = event(
    "PostToolUse",
    tool_name="Read",
    tool_use_id="r1",
    tool_input={"file_path": "/a"},
    tool_response={"content": "x = 1\n"},
)


@pytest.mark.parametrize("data", [PRE_TOOL, POST_TOOL], ids=["PreToolUse", "PostToolUse"])
def test_hot_path_imports_nothing_heavy(tmp_path: Path, data: bytes) -> None:
    result = _probe(tmp_path, data)
    assert result["code"] == 0 and result["out"] == ""
    assert _heavy(result["new"]) == set(), result["new"]


@pytest.mark.parametrize("data", [PRE_TOOL, POST_TOOL], ids=["PreToolUse", "PostToolUse"])
def test_hot_modules_add_nothing_heavy_beyond_the_journal(tmp_path: Path, data: bytes) -> None:
    """What this adapter adds on top of the storage journal (whatever that costs)."""
    result = _probe(
        tmp_path, data, pre="import claude_state.storage.journal, xxhash\nbefore = set(sys.modules)"
    )
    assert result["code"] == 0 and result["out"] == ""
    assert _heavy(result["new"]) == set(), result["new"]
    assert (tmp_path / "state" / "sessions" / f"{SID}.wal").exists()


@pytest.mark.parametrize(
    "pre, expect",
    [
        (
            "import claude_state.storage.journal, xxhash\nbefore = set(sys.modules)\nimport pluggy",
            "pluggy",
        ),
        (
            "import claude_state.storage.journal, xxhash\nbefore = set(sys.modules)\n"
            "import zstandard",
            "zstandard",
        ),
    ],
    ids=["pluggy", "zstandard"],
)
def test_negative_control_heavy_import_is_caught(tmp_path: Path, pre: str, expect: str) -> None:
    result = _probe(tmp_path, PRE_TOOL, pre=pre)
    assert expect in _heavy(result["new"])


def test_negative_control_secret_loads_re(tmp_path: Path) -> None:
    """A possible secret makes the hot path load the real redactor: the probe sees it."""
    data = event(
        "PreToolUse",
        tool_name="Bash",
        tool_use_id="b1",
        tool_input={"command": "export OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx"},
    )
    result = _probe(
        tmp_path, data, pre="import claude_state.storage.journal, xxhash\nbefore = set(sys.modules)"
    )
    assert {"json", "claude_state.plugins.redaction"} <= set(result["new"])
    assert "json" in _heavy(result["new"])


HOT_FILES = [
    "claude_state/adapters/claude_code/hot.py",
    "claude_state/adapters/claude_code/hookio.py",
    "claude_state/adapters/claude_code/scanner.py",
    "claude_state/plugins/redaction_literals.py",
    "claude_state/plugins/__init__.py",
]


@pytest.mark.parametrize("path", HOT_FILES)
def test_hot_modules_import_only_stdlib_basics_at_top_level(path: str) -> None:
    import ast

    tree = ast.parse((Path(REPO) / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    allowed = {
        "os",
        "sys",
        "time",
        "claude_state.adapters.claude_code.hookio",
        "claude_state.adapters.claude_code.scanner",
        "claude_state.ids",
        "claude_state.plugins.redaction_literals",
        "claude_state.storage",
        "claude_state.storage.layout",
    }
    assert names <= allowed, names - allowed


FINISH = """
import atexit, os, sys
sys.path[:0] = {paths!r}
atexit.register(lambda: os.write(2, b"finalized"))
from claude_state.adapters.claude_code.hot import main
main()
"""


@pytest.mark.parametrize(
    ("data", "finalized"),
    [(PRE_TOOL, False), (event("SessionStart", source="startup"), True)],
    ids=["hot-event-skips-finalization", "cold-event-finalizes"],
)
def test_a_hot_event_ends_the_process_without_finalization(
    tmp_path: Path, data: bytes, finalized: bool
) -> None:
    """A hot event ends with ``os._exit`` once its answer is flushed (~4 ms saved per
    hook); a cold one with ``sys.exit``, so plugins' ``atexit`` handlers still run (the
    control: the same probe sees the handler run)."""
    code = FINISH.format(paths=[REPO, SITE])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CLAUDE_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_STATE_STRICT": "1",
        "CLAUDE_STATE_PLUGINS": "none",
    }
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        input=data,
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert (b"finalized" in r.stderr) is finalized, r.stderr
    from claude_state.storage import journal
    from claude_state.storage.layout import StateDir

    assert len(journal.read(StateDir(str(tmp_path / "state")), SID)) == 1  # recorded
