"""Crash detection and recovery with real agents killed by SIGKILL; fencing of zombies."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest
from _session_helpers import SID, kill9, spawn, start_agent, wait_line, write_lease

from claude_state.domain import leases, recovery
from claude_state.domain.definition import parse_definition
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.errors import LeaseHeldError, NotFoundError
from claude_state.storage.layout import StateDir

HAVE_CHECKPOINTS = importlib.util.find_spec("claude_state.domain.checkpoints") is not None
WID = "retry-work"


@pytest.fixture
def state(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "state")).ensure()


def crashed_agent(state: StateDir, sid: str = SID, wid: str = WID) -> None:
    kill9(start_agent(state, sid, wid))


def test_killed_agent_is_detected_planned_and_recovered(state: StateDir) -> None:
    crashed_agent(state)
    assert recovery.find_crashed(state) == [SID]
    p = recovery.plan(state, SID)
    assert p.status == "crashed" and p.strategy == recovery.STRATEGY_WAL and not p.applied
    assert "toolu_2" in p.estimated_data_loss and "none of the" in p.estimated_data_loss
    [w] = p.recoverable_workflows
    assert (w["id"], w["status"], w["progress"], w["step_in_flight"]) == (
        WID,
        "running",
        33.3,
        "build",
    )
    assert p.last_activity["last_prompt"] == "add retries to the payment client"
    assert p.last_activity["last_tool_calls"][-1]["summary"] == "pytest -x"
    assert p.in_flight_tool_calls[0]["tool_name"] == "Bash"

    done = recovery.apply(state, p)
    assert done.applied and done.status == "recovered" and done.changes
    assert done.recoverable_workflows[0]["interrupted_steps"] == ["build"]
    wf = WorkflowStore(state).load(WID)
    build = wf.step("build")
    assert build.status == "pending" and "interrupted by crash" in (build.error or "")
    assert wf.current_step == "build"  # ready to retry
    assert wf.owner == {"session_id": SID, "epoch": 2}
    lease = leases.read(state, SID)
    assert lease is not None and lease.released and lease.reason == "recovered"
    assert lease.epoch == 2
    rec = SessionStore(state).load(SID)
    assert rec.status == "recovered" and rec.in_flight == {}
    assert SessionStore(state).status(SID) == "recovered"
    assert recovery.find_crashed(state) == []
    if HAVE_CHECKPOINTS:
        from claude_state.domain.checkpoints import CheckpointStore

        cps = CheckpointStore(state, workflows=WorkflowStore(state)).list(WID)
        assert [c["type"] for c in cps].count("recovery") == 1

    again = recovery.apply(state, recovery.plan(state, SID))
    assert again.applied and again.changes == [] and again.strategy == "nothing_to_recover"
    assert WorkflowStore(state).load(WID).to_dict() == wf.to_dict()


def test_live_agent_is_never_recovered(state: StateDir) -> None:
    agent = start_agent(state, SID, WID)
    try:
        assert recovery.find_crashed(state) == []
        p = recovery.plan(state, SID)
        assert p.status == "active" and p.strategy == "nothing_to_recover"
        with pytest.raises(LeaseHeldError):
            recovery.apply(state, p)
        assert WorkflowStore(state).load(WID).step("build").status == "running"
    finally:
        kill9(agent)


def test_unknown_session(state: StateDir) -> None:
    with pytest.raises(NotFoundError):
        recovery.plan(state, "nope")


def test_crashed_session_without_workflows(state: StateDir) -> None:
    crashed_agent(state, "s-plain", "-")
    p = recovery.plan(state, "s-plain")
    assert p.recoverable_workflows == [] and p.strategy == recovery.STRATEGY_WAL
    assert recovery.apply(state, p).status == "recovered"


def test_ended_and_recovered_sessions_are_skipped_by_the_scan(state: StateDir) -> None:
    crashed_agent(state, "a")
    crashed_agent(state, "b", "wf-b")
    SessionStore(state).end("a", "exit")  # an agent that ended but died before release
    assert recovery.find_crashed(state) == ["b"]


ZOMBIE = """
import sys, time
from claude_state.storage.layout import StateDir
from claude_state.domain.store import WorkflowStore
from claude_state.domain import ops
from claude_state.errors import StaleEpochError
from claude_state.clock import now_iso
state = StateDir(sys.argv[1]); wid = sys.argv[2]
epoch = None if sys.argv[3] == "none" else int(sys.argv[3])
wfs = WorkflowStore(state)
i = 0
while True:
    try:
        wfs.apply(wid, ops.op_set_data("counter", i, now_iso()), epoch=epoch)
    except StaleEpochError:
        print("fenced", flush=True)
        break
    print("ok", i, flush=True)
    i += 1
    time.sleep(0.01)
"""


def run_zombie(state: StateDir, fenced: bool) -> list[str]:
    """A writer on another (silent) host keeps writing after its session was recovered."""
    wfs = WorkflowStore(state)
    wfs.create(parse_definition({"id": WID, "steps": [{"id": "a"}]}))
    from claude_state.clock import now_iso
    from claude_state.domain import ops

    write_lease(
        state,
        SID,
        pid=4242,
        start_time="ticks:1",
        boot_id="b",
        host="other-host",
        heartbeat_at=time.time() - 1000,
        ttl=60,
    )
    wfs.apply(WID, ops.op_owner(SID, 1, now_iso()), epoch=1)
    SessionStore(state).note_workflow(SID, WID)
    zombie = spawn(ZOMBIE, state.root, WID, "1" if fenced else "none")
    wait_line(zombie, "ok 3")
    assert recovery.find_crashed(state) == [SID]
    recovery.apply(state, recovery.plan(state, SID))
    time.sleep(0.3)
    if zombie.poll() is None:
        zombie.kill()
    out, _ = zombie.communicate(timeout=30)
    return out.split("\n")


def test_zombie_writer_is_fenced_after_recovery(state: StateDir) -> None:
    lines = run_zombie(state, fenced=True)
    assert "fenced" in lines
    assert WorkflowStore(state).load(WID).owner == {"session_id": SID, "epoch": 2}


def test_zombie_without_fencing_keeps_writing(tmp_path: Any) -> None:
    # Protection off (no epoch presented): the zombie's writes still land after recovery.
    state = StateDir(str(tmp_path / "nofence")).ensure()
    lines = run_zombie(state, fenced=False)
    assert "fenced" not in lines


RECOVERER = """
import sys, time
from claude_state.storage.layout import StateDir
from claude_state.domain import recovery
state = StateDir(sys.argv[1]); sid = sys.argv[2]; start_at = float(sys.argv[3])
p = recovery.plan(state, sid)
while time.time() < start_at:
    time.sleep(0.001)
done = recovery.apply(state, p)
print("changes", len(done.changes), flush=True)
"""


def test_two_concurrent_recoverers(state: StateDir) -> None:
    crashed_agent(state)
    start_at = f"{time.time() + 1.5:.6f}"
    procs = [spawn(RECOVERER, state.root, SID, start_at) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert sorted(o == "changes 0" for o in outs) == [False, True]
    wf = WorkflowStore(state).load(WID)
    assert sum(1 for h in wf.history if h["event"] == "interrupt") == 1
    assert wf.owner == {"session_id": SID, "epoch": 2}


KILLED_RECOVERY = """
import os, signal, sys
from claude_state.storage.layout import StateDir
from claude_state.domain import recovery
state = StateDir(sys.argv[1]); sid = sys.argv[2]
orig = recovery._recover_workflow
def die(*a, **k):
    orig(*a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
recovery._recover_workflow = die
recovery.apply(state, recovery.plan(state, sid))
"""


def test_recovery_killed_half_way_is_finished_by_the_next(state: StateDir) -> None:
    crashed_agent(state)
    p = spawn(KILLED_RECOVERY, state.root, SID)
    p.communicate(timeout=60)
    assert p.returncode == -9
    lease = leases.read(state, SID)
    assert lease is not None and lease.reason == "broken"
    assert SessionStore(state).status(SID) == "crashed"
    assert recovery.find_crashed(state) == [SID]
    done = recovery.apply(state, recovery.plan(state, SID))
    assert done.status == "recovered"
    wf = WorkflowStore(state).load(WID)
    assert wf.step("build").status == "pending"
    assert sum(1 for h in wf.history if h["event"] == "interrupt") == 1
    assert recovery.find_crashed(state) == []


def test_resumed_session_recovers_then_takes_a_new_epoch(state: StateDir) -> None:
    from claude_state.domain.procinfo import ProcessIdentity

    crashed_agent(state)
    assert recovery.unfinished_workflows(state, SID)[0]["step_in_flight"] == "build"
    done = recovery.recover_for_resume(state, SID)
    assert done is not None and done.applied
    assert recovery.recover_for_resume(state, SID) is None
    _rec, lease = SessionStore(state).start(SID, ProcessIdentity.current())
    assert lease.epoch == 3
    [w] = recovery.unfinished_workflows(state, SID)
    assert w["next_step"] == "build" and w["step_in_flight"] is None


def test_damaged_workflow_is_restored_from_its_checkpoint(state: StateDir) -> None:
    from claude_state.domain.checkpoints import CheckpointStore

    crashed_agent(state)
    cp = CheckpointStore(state, workflows=WorkflowStore(state)).create(WID, type="automatic")
    path = state.workflow_state(WID)
    with open(path, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0x55]))
    p = recovery.plan(state, SID)
    assert p.strategy == recovery.STRATEGY_RESTORE
    assert p.recoverable_workflows[0]["last_checkpoint"]["id"] == cp["id"]
    assert "damaged" in p.estimated_data_loss
    done = recovery.apply(state, p)
    assert any("restored workflow" in c for c in done.changes)
    wf = WorkflowStore(state).load(WID)
    assert wf.step("build").status == "pending" and wf.current_step == "build"
