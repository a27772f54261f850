"""Checkpoint benchmarks: create (incremental, full) and restore at 1 MB and 20 MB, and the
disk used by 100 checkpoints of a state growing 10 KB a step to 1 MB.

Run: ``.venv/bin/pytest benchmarks/bench_checkpoints.py -p no:cacheprovider -s``
(``-s`` shows the figures). Design budget enforced: creating a checkpoint < 100 ms at
20 MB (``docs/PERFORMANCE.md``). Disk aim: < 2.5 MB for the 100 growing checkpoints
(LangGraph's SqliteSaver: 50.4 MB measured on the same work).

The state is realistic text from a fixed seed: step outputs that look like code, logs,
diffs and test output (compressible like the real thing, not runs of one byte).
"""

from __future__ import annotations

import os
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.model import Workflow
from claude_state.domain.ops import apply_op, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.storage.layout import StateDir

T = "2026-01-01T00:00:00.000Z"
BUDGET_CREATE_S = 0.100

_WORDS = (
    "def",
    "return",
    "self",
    "value",
    "result",
    "error",
    "path",
    "state",
    "config",
    "import",
    "from",
    "class",
    "if",
    "else",
    "for",
    "in",
    "while",
    "try",
    "except",
    "raise",
    "assert",
    "None",
    "True",
    "False",
    "len",
    "dict",
    "list",
    "str",
    "int",
    "async",
    "await",
    "workflow",
    "step",
    "checkpoint",
    "session",
    "lease",
    "blob",
    "frame",
    "write",
    "read",
    "load",
    "save",
    "test",
    "passed",
    "failed",
    "ok",
    "build",
    "deploy",
    "cache",
    "index",
    "user",
    "request",
    "response",
    "timeout",
    "retry",
)


def _text(rng: random.Random, size: int) -> str:
    """About *size* bytes of code/log/diff-like lines."""
    lines: list[str] = []
    n = 0
    while n < size:
        kind = rng.random()
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        if kind < 0.4:
            line = "    " * rng.randint(0, 3) + words.replace(" ", "_", 1) + "(" + words[:20] + ")"
        elif kind < 0.7:
            line = (
                f"2026-01-01T00:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z "
                f"{rng.choice(['INFO', 'DEBUG', 'WARN'])} {words} id={rng.getrandbits(32):x}"
            )
        elif kind < 0.85:
            line = rng.choice("+- ") + " " + words
        else:
            test = f"tests/test_{rng.choice(_WORDS)}.py::{words.split()[0]}"
            line = f"{test} PASSED [{rng.randint(0, 100)}%]"
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines)[:size]


def make_workflow(total_bytes: int, per_output: int = 40_000, seed: int = 42) -> Workflow:
    """A workflow whose completed steps' outputs add up to about *total_bytes*."""
    rng = random.Random(seed)
    n = max(1, total_bytes // per_output)
    wf = parse_definition(
        {
            "id": "bench",
            "steps": [{"id": f"s{i}", "deps": [f"s{i - 1}"] if i else []} for i in range(n + 20)],
        },
        at=T,
    )
    for i in range(n):
        apply_op(wf, op_step(f"s{i}", "running", at=T))
        apply_op(wf, op_step(f"s{i}", "completed", output={"log": _text(rng, per_output)}, at=T))
    return wf


def _state(tmp_path: Path) -> tuple[StateDir, WorkflowStore]:
    state = StateDir(tmp_path / "state").ensure()
    # Outputs stay inside the document (no blobs) so the checkpoint carries the full size.
    return state, WorkflowStore(state, blob_threshold=1 << 30)


def _report(name: str, benchmark: Any, budget: float | None = None) -> None:
    from conftest import ROWS

    data = sorted(benchmark.stats.stats.data)
    med = statistics.median(data)
    p90 = data[min(len(data) - 1, int(len(data) * 0.9))]
    extra = f" (budget {budget * 1000:.0f} ms)" if budget else ""
    print(f"\n{name}: median {med * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms{extra}")
    ROWS.append(
        (
            f"{name} (all values inline: stress case)",
            "-",
            f"{med * 1000:.2f} / {p90 * 1000:.2f}",
            "-",
            "-",
            f"< {budget * 1000:.0f} ms" if budget else "-",
        )
    )


@pytest.mark.parametrize("size", [1 << 20, 20 << 20], ids=["1MB", "20MB"])
def test_create_incremental(tmp_path: Path, benchmark: Any, size: int) -> None:
    state, store = _state(tmp_path)
    wf = store.create(make_workflow(size))
    cps = CheckpointStore(state, store)
    cps.create("bench", wf=wf)  # the full one at the head of the chain
    counter = iter(range(10**6))

    def change() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(counter)
        if len(cps.ids("bench")) % cps.full_every == 0:
            # keep every measured one incremental: restart the chain outside the timing
            cps.full_every += cps.full_every
        apply_op(wf, {"v": 1, "op": "set_data", "at": T, "key": f"k{i}", "value": i})
        return ("bench",), {"wf": wf}

    benchmark.pedantic(cps.create, setup=change, rounds=15, iterations=1)
    assert all(c["incremental"] for c in cps.list("bench")[1:])
    _report(f"checkpoint create incremental {size >> 20} MB", benchmark, BUDGET_CREATE_S)
    assert statistics.median(benchmark.stats.stats.data) < BUDGET_CREATE_S


@pytest.mark.parametrize("size", [1 << 20, 20 << 20], ids=["1MB", "20MB"])
def test_create_full(tmp_path: Path, benchmark: Any, size: int) -> None:
    state, store = _state(tmp_path)
    wf = store.create(make_workflow(size))
    cps = CheckpointStore(state, store, full_every=1)
    benchmark.pedantic(cps.create, args=("bench",), kwargs={"wf": wf}, rounds=5, iterations=1)
    assert not any(c["incremental"] for c in cps.list("bench"))
    _report(f"checkpoint create full {size >> 20} MB", benchmark)


@pytest.mark.parametrize("size", [1 << 20, 20 << 20], ids=["1MB", "20MB"])
def test_restore(tmp_path: Path, benchmark: Any, size: int) -> None:
    """Restore of the newest checkpoint of a 10-long chain (1 full + 9 deltas), by a
    cold store (nothing cached): read + verify + patch + validate + save."""
    state, store = _state(tmp_path)
    wf = store.create(make_workflow(size))
    cps = CheckpointStore(state, store)
    for i in range(10):
        apply_op(wf, {"v": 1, "op": "set_data", "at": T, "key": f"k{i}", "value": i})
        last = cps.create("bench", wf=wf)["id"]

    def cold() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (CheckpointStore(state, WorkflowStore(state, blob_threshold=1 << 30)), last), {}

    benchmark.pedantic(lambda c, cid: c.restore(cid), setup=cold, rounds=5, iterations=1)
    assert store.load("bench").data["k9"] == 9
    _report(f"checkpoint restore {size >> 20} MB (chain of 10)", benchmark)


def test_disk_of_100_growing_checkpoints(tmp_path: Path) -> None:
    """100 checkpoints of a state growing 10 KB a step to 1 MB (LangGraph: 50.4 MB)."""
    state, store = _state(tmp_path)
    rng = random.Random(7)
    wf = store.create(
        parse_definition(
            {
                "id": "bench",
                "steps": [{"id": f"s{i}", "deps": [f"s{i - 1}"] if i else []} for i in range(100)],
            },
            at=T,
        )
    )
    cps = CheckpointStore(state, store)
    for i in range(100):
        wf = store.apply_many(
            "bench",
            [
                op_step(f"s{i}", "running", at=T),
                op_step(f"s{i}", "completed", output={"log": _text(rng, 10_000)}, at=T),
            ],
        )
        cps.create("bench", type="post_step", wf=wf)
    doc_size = len(__import__("orjson").dumps(store.load("bench").to_dict()))
    cdir = state.checkpoint_dir("bench")
    total = sum(os.path.getsize(os.path.join(cdir, n)) for n in os.listdir(cdir))
    print(
        f"\n100 growing checkpoints: final state {doc_size / 1e6:.2f} MB, "
        f"checkpoints on disk {total / 1e6:.2f} MB (aim < 2.5 MB; LangGraph 50.4 MB: "
        f"{50.4e6 / total:.0f}x less)"
    )
    from conftest import ROWS

    ROWS.append(
        (
            "disk: 100 checkpoints of a state growing 10 KB a step",
            "1MB",
            f"{total / 1e6:.2f} MB",
            "LangGraph: 50.4 MB (PERFORMANCE.md)",
            f"{50.4e6 / total:.0f}x less",
            "aim: < 2.5 MB",
        )
    )
    assert doc_size > 1_000_000
    assert total < 2_500_000


# -- the design budget, in the default configuration ------------------------------------------


@pytest.mark.parametrize("full_every", [1, 10], ids=["full", "incremental"])
def test_create_realistic_20mb_default_config(
    tmp_path: Path, benchmark: Any, full_every: int
) -> None:
    """The budget (checkpoint < 100 ms) on the realistic 20 MB state of
    benchmarks/workload.py with the default store: values over 64 KiB live in blobs,
    shared by the workflow and every checkpoint, so a checkpoint writes the document
    only. (The all-inline stress case above is reported, not held to the budget: zstd
    alone takes 140-180 ms on 20 MB of that text.)"""
    from conftest import ROWS
    from workload import SIZES, make_state

    state = StateDir(tmp_path / "state").ensure()
    store = WorkflowStore(state)
    wf = store.create(make_state(SIZES["20MB"]))
    cps = CheckpointStore(state, store, full_every=full_every)
    cps.create(wf.id, wf=wf)  # the head of the chain
    counter = iter(range(10**6))

    def change() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(counter)
        if full_every > 1 and len(cps.ids(wf.id)) % cps.full_every == 0:
            cps.full_every += cps.full_every  # keep every measured one incremental
        apply_op(wf, {"v": 1, "op": "set_data", "at": T, "key": f"k{i}", "value": i})
        return (wf.id,), {"wf": wf}

    benchmark.pedantic(cps.create, setup=change, rounds=10, iterations=1)
    data = sorted(benchmark.stats.stats.data)
    med, p90 = statistics.median(data), data[min(len(data) - 1, int(len(data) * 0.9))]
    kind = "full" if full_every == 1 else "incremental"
    ROWS.append(
        (
            f"checkpoint create, {kind} (default config, blobs shared)",
            "20MB",
            f"{med * 1000:.2f} / {p90 * 1000:.2f}",
            "-",
            "-",
            "< 100 ms",
        )
    )
    assert med < BUDGET_CREATE_S
