"""Damage never hides a crash (issue 15): a session whose lease, record or journal is
damaged is counted, named, planned and announced, never dropped or shown as active.

Real agent processes (killed with SIGKILL, or left running as the control), real bit
flips in the files, every check through the real ``claude-state`` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
from _session_helpers import SID, kill9, start_agent

from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.storage.layout import StateDir

WID = "retry-work"
EXE = os.path.join(os.path.dirname(sys.executable), "claude-state")
NEW_SID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def cli(
    state: StateDir, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env.update(CLAUDE_STATE_FSYNC="0", CLAUDE_STATE_DIR=state.root)
    return subprocess.run(
        [EXE, *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def js(state: StateDir, *args: str) -> Any:
    r = cli(state, "--json", *args)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return orjson.loads(r.stdout)


def flip(path: str, at: int = -3) -> None:
    """Flip one bit of the payload (*at* from the end: past the frame header)."""
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        pos = size + at if at < 0 else at
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x04]))


@pytest.fixture
def state(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "state")).ensure()


def session_start_context(state: StateDir) -> str:
    """The additionalContext a new session's SessionStart hook gets."""
    ev = {
        "session_id": NEW_SID,
        "transcript_path": f"/tmp/{NEW_SID}.jsonl",
        "cwd": "/tmp",
        "hook_event_name": "SessionStart",
        "source": "startup",
    }
    r = cli(state, "hook", "SessionStart", stdin=json.dumps(ev).encode())
    assert r.returncode == 0, r.stderr
    if not r.stdout.strip():
        return ""
    out = json.loads(r.stdout)
    return str(out.get("hookSpecificOutput", {}).get("additionalContext", ""))


def test_crash_with_a_damaged_lease_is_counted_planned_announced_recovered(
    state: StateDir,
) -> None:
    kill9(start_agent(state, SID, WID))
    flip(state.lease(SID))

    st = js(state, "status")
    assert st["sessions"]["crashed"] == 1 and st["sessions"]["active"] == 0
    [d] = st["damaged"]
    assert d["session_id"] == SID and d["status"] == "crashed"
    assert d["problems"][0]["kind"] == "damaged_lease"
    assert d["problems"][0]["path"] == state.lease(SID)
    assert [p["session_id"] for p in st["crashed"]] == [SID]

    [row] = js(state, "sessions", "list")
    assert row["status"] == "crashed" and row["problems"][0]["kind"] == "damaged_lease"
    assert js(state, "sessions", "show", SID)["status"] == "crashed"

    [plan] = js(state, "recover", "--dry-run")["plans"]
    assert plan["session_id"] == SID and "damaged_lease" in plan["estimated_data_loss"]
    assert plan["recoverable_workflows"][0]["id"] == WID

    text = session_start_context(state)
    assert f"Crashed session {SID}" in text and "damaged_lease" in text

    [done] = js(state, "recover", SID)["plans"]
    assert done["applied"] and any("replaced the damaged lease" in c for c in done["changes"])
    wf = WorkflowStore(state).load(WID)
    assert wf.owner == {"session_id": SID, "epoch": 2} and wf.step("build").status == "pending"
    after = js(state, "status")
    assert after["sessions"]["recovered"] == 1 and after["damaged"] == []
    assert cli(state, "verify").returncode == 0


def test_control_a_live_agent_with_a_damaged_lease_is_not_taken_over(state: StateDir) -> None:
    agent = start_agent(state, SID, WID)
    try:
        flip(state.lease(SID))
        st = js(state, "status")
        assert st["sessions"]["active"] == 1 and st["sessions"]["crashed"] == 0
        assert st["damaged"][0]["status"] == "active"  # still named
        r = cli(state, "recover", SID)
        assert r.returncode == 4, r.stderr  # refused, as for any live owner
        assert f"live process {agent.pid}" in r.stderr
        assert WorkflowStore(state).load(WID).owner == {"session_id": SID, "epoch": 1}
    finally:
        kill9(agent)


@pytest.mark.parametrize("which", ["session", "wal"])
def test_damaged_record_or_journal_is_counted_and_named(state: StateDir, which: str) -> None:
    kill9(start_agent(state, SID, WID))
    if which == "session":
        SessionStore(state).catch_up(SID)  # the record, with the journal folded in
        path = state.session_record(SID)
    else:
        path = state.session_wal(SID)
    before = js(state, "status")["sessions"]
    flip(path, at=-2 if which == "session" else 200)
    st = js(state, "status")
    assert sum(st["sessions"].values()) == sum(before.values()) == 1
    assert st["sessions"]["crashed"] == 1
    [d] = st["damaged"]
    kind = "damaged_record" if which == "session" else "damaged_journal"
    assert [p["kind"] for p in d["problems"]] == [kind] and d["problems"][0]["path"] == path
    [row] = js(state, "sessions", "list")
    assert row["status"] == "crashed" and row["problems"][0]["kind"] == kind


def test_a_quarantined_lease_does_not_hide_the_crash(state: StateDir) -> None:
    """``verify --repair`` moves the damaged lease away; the session is not "active" for
    want of a lease: counted crashed, named, and found by a plain ``recover``."""
    kill9(start_agent(state, SID, WID))
    flip(state.lease(SID))
    assert cli(state, "verify", "--repair").returncode == 0
    assert not os.path.exists(state.lease(SID))
    st = js(state, "status")
    assert st["sessions"]["crashed"] == 1
    assert st["damaged"][0]["problems"][0]["kind"] == "quarantined_lease"
    [done] = js(state, "recover")["plans"]
    assert done["session_id"] == SID and done["applied"]
    assert WorkflowStore(state).load(WID).owner == {"session_id": SID, "epoch": 2}
    after = js(state, "status")
    assert after["sessions"]["recovered"] == 1 and after["damaged"] == []


SID2 = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_recover_rebuilds_a_damaged_record_from_its_journal(state: StateDir) -> None:
    """The record is a fold of the journal: recovery sets the damaged one aside in
    quarantine/ and folds the journal again, instead of refusing the crash."""
    kill9(start_agent(state, SID, WID))
    SessionStore(state).catch_up(SID)
    flip(state.session_record(SID), at=-2)
    [done] = js(state, "recover", SID)["plans"]
    assert done["applied"] and done["status"] == "recovered"
    assert any("rebuilt the damaged session record" in c for c in done["changes"])
    assert [w["id"] for w in done["recoverable_workflows"]] == [WID]
    quarantined = os.listdir(os.path.join(state.root, "quarantine"))
    assert quarantined == [f"sessions__{SID}.session"]
    after = js(state, "status")
    assert after["sessions"]["recovered"] == 1 and after["damaged"] == []
    assert js(state, "verify")["ok"]


def test_one_unrecoverable_session_does_not_keep_the_others_from_recovery(
    state: StateDir,
) -> None:
    """A journal damaged before its tail cannot be folded: that session is named with
    its error, every other crashed session is still recovered, and the exit is 1."""
    kill9(start_agent(state, SID, WID))
    kill9(start_agent(state, SID2, "other-work"))
    flip(state.session_wal(SID), at=200)
    ctx = session_start_context(state)  # the crash scan goes on past the damaged one
    assert SID in ctx and SID2 in ctx
    r = cli(state, "--json", "recover")
    assert r.returncode == 1, r.stderr
    plans = {p["session_id"]: p for p in orjson.loads(r.stdout)["plans"]}
    assert set(plans) == {SID, SID2}
    assert plans[SID2]["applied"] and plans[SID2]["status"] == "recovered"
    assert not plans[SID]["applied"] and plans[SID]["error"]["kind"] == "WALError"
    assert state.session_wal(SID) in plans[SID]["error"]["message"]
    # asked for alone, the same session's error is the answer (exit 1, named)
    alone = cli(state, "recover", SID)
    assert alone.returncode == 1 and state.session_wal(SID) in alone.stderr
