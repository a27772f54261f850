"""Benchmarks of crash detection and recovery (pytest-benchmark).

Run: ``.venv/bin/pytest benchmarks/bench_recovery.py -p no:cacheprovider``

* the crash scan (:func:`recovery.find_crashed`) over 1,000 sessions on disk: 980 ended
  (tombstones), 10 live, 10 crashed; the aim is under 50 ms;
* detect + plan + apply for one crashed session owning a 1 MB workflow; the design
  budget is 1 s.

Each prints its median and its ratio to the budget.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from claude_state.clock import now_iso
from claude_state.domain import leases, ops, recovery
from claude_state.domain.definition import parse_definition
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

SCAN_BUDGET = 0.050
RECOVERY_BUDGET = 1.0


def dead_identity() -> ProcessIdentity:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    time.sleep(0.05)
    ident = ProcessIdentity.current(proc.pid)
    proc.kill()
    proc.wait()
    return ident


def report(name: str, benchmark: Any, budget: float) -> None:
    from conftest import ROWS

    data = sorted(benchmark.stats.stats.data)
    median = benchmark.stats.stats.median
    p90 = data[min(len(data) - 1, int(len(data) * 0.9))]
    ROWS.append(
        (
            name,
            "-",
            f"{median * 1000:.2f} / {p90 * 1000:.2f}",
            "-",
            "-",
            f"< {budget * 1000:.0f} ms",
        )
    )
    print(
        f"\n{name}: median {median * 1000:.2f} ms, budget {budget * 1000:.0f} ms, "
        f"ratio {median / budget:.3f} of budget"
    )
    assert median < budget


@pytest.fixture(scope="module")
def dead() -> ProcessIdentity:
    return dead_identity()


def test_crash_scan_1000_sessions(tmp_path: Any, benchmark: Any, dead: ProcessIdentity) -> None:
    state = StateDir(str(tmp_path / "state")).ensure()
    me = ProcessIdentity.current()
    crashed = []
    for i in range(1000):
        sid = f"session-{i:04d}"
        journal.append(
            state,
            sid,
            [
                journal.wrap(
                    b'{"hook_event_name":"SessionStart","source":"startup","session_id":"%s"}'
                    % sid.encode()
                )
            ],
        )
        if i % 100 == 1:
            leases.acquire(state, sid, me)  # live
        elif i % 100 == 2:
            leases.acquire(state, sid, dead)  # crashed
            crashed.append(sid)
        else:
            leases.acquire(state, sid, me)
            leases.release(state, sid, reason=leases.REASON_ENDED)
    assert recovery.find_crashed(state) == crashed
    result = benchmark(recovery.find_crashed, state)
    assert result == crashed
    report("crash scan over 1,000 sessions", benchmark, SCAN_BUDGET)


def build_crashed(root: str, dead: ProcessIdentity) -> StateDir:
    state = StateDir(root).ensure()
    sid = "crashed-1"
    wid = "big"
    steps = [{"id": f"s{i:03d}", **({"deps": [f"s{i - 1:03d}"]} if i else {})} for i in range(100)]
    wfs = WorkflowStore(state)
    wf = parse_definition({"id": wid, "name": "one megabyte", "steps": steps})
    for k in range(100):  # 100 x 10 KB values, under the blob threshold: inline
        wf.data[f"k{k:03d}"] = "x" * 10_000
    wfs.create(wf)
    lease = leases.acquire(state, sid, dead)
    wfs.apply(wid, ops.op_owner(sid, lease.epoch, now_iso()))
    for i in range(50):
        wfs.apply(wid, ops.op_step(f"s{i:03d}", "completed", at=now_iso()))
    wfs.apply(wid, ops.op_step("s050", "running", at=now_iso()))
    SessionStore(state).note_workflow(sid, wid, "s050")
    evs = [
        b'{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_use_id":"t%d",'
        b'"tool_input":{"command":"make"}}' % i
        for i in range(200)
    ]
    journal.append(state, sid, [journal.wrap(e) for e in evs])
    size = os.path.getsize(state.workflow_state(wid))
    assert len(wfs.load(wid).to_dict()["data"]) == 100, size
    return state


def test_detect_plan_apply_1mb_workflow(
    tmp_path: Any, benchmark: Any, dead: ProcessIdentity
) -> None:
    template = str(tmp_path / "template")
    build_crashed(template, dead)
    n = [0]

    def setup() -> tuple[tuple[StateDir], dict[str, Any]]:
        n[0] += 1
        root = str(tmp_path / f"run{n[0]}")
        shutil.copytree(template, root)
        return (StateDir(root),), {}

    def detect_plan_apply(state: StateDir) -> None:
        [sid] = recovery.find_crashed(state)
        done = recovery.apply(state, recovery.plan(state, sid))
        assert done.applied and done.recoverable_workflows[0]["interrupted_steps"] == ["s050"]

    benchmark.pedantic(detect_plan_apply, setup=setup, rounds=10, iterations=1)
    report("detect + plan + apply, 1 MB workflow", benchmark, RECOVERY_BUDGET)
