"""Fencing of CLI writes made on behalf of a recovered session; old leases put back.

A real agent process takes the lease and drives a workflow, is killed with SIGKILL, and
``claude-state recover`` takes over (the epoch moves from 1 to 2). A ``claude-state``
write that still runs for the old session (``CLAUDE_CODE_SESSION_ID``) is then refused
with exit 4 and changes nothing; the same command run for no session, or for the
session resumed under a new lease, goes through (the controls).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import orjson
import pytest
from _session_helpers import SID, kill9, start_agent

from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.storage.layout import StateDir

WID = "retry-work"
EXE = os.path.join(os.path.dirname(sys.executable), "claude-state")


def cli(state: StateDir, *args: str, sid: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CODE_SESSION_ID"}
    env["CLAUDE_STATE_FSYNC"] = "0"
    if sid is not None:
        env["CLAUDE_CODE_SESSION_ID"] = sid
    return subprocess.run(
        [EXE, "--state-dir", state.root, "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def files(state: StateDir) -> dict[str, bytes]:
    out = {}
    for d in (state.workflows, state.sessions):
        for name in sorted(os.listdir(d)):
            if not name.endswith(".lock"):
                with open(os.path.join(d, name), "rb") as f:
                    out[name] = f.read()
    return out


@pytest.fixture
def recovered(tmp_path: Any) -> StateDir:
    """A session whose agent was killed mid-step, recovered through the CLI."""
    state = StateDir(str(tmp_path / "state")).ensure()
    kill9(start_agent(state, SID, WID))
    r = cli(state, "recover", SID)
    assert r.returncode == 0, r.stderr
    assert WorkflowStore(state).load(WID).owner == {"session_id": SID, "epoch": 2}
    return state


STEP = ("workflow", "step", WID, "build", "--status", "running")


def test_old_session_write_is_refused_and_changes_nothing(recovered: StateDir) -> None:
    before = files(recovered)
    r = cli(recovered, *STEP, sid=SID)
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "stale owner epoch 1" in r.stderr and "fenced" in r.stderr
    assert files(recovered) == before
    from claude_state.domain.checkpoints import CheckpointStore

    [cp] = [c["id"] for c in CheckpointStore(recovered).list(WID) if c["type"] == "recovery"]
    for args in (
        ("workflow", "data", WID, "k", "1"),
        ("workflow", "pause", WID),
        ("workflow", "delete", WID),
        ("workflow", "rollback", WID, "--steps", "1"),
        ("workflow", "rollback", WID, "--to", cp),
        ("checkpoint", "restore", cp),
    ):
        r = cli(recovered, *args, sid=SID)
        assert r.returncode == 4, (args, r.returncode, r.stderr)
    assert files(recovered) == before


def test_control_the_same_write_for_no_session_goes_through(recovered: StateDir) -> None:
    r = cli(recovered, *STEP)
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["status"] == "running"


def test_control_the_resumed_session_writes_under_its_new_epoch(recovered: StateDir) -> None:
    # The session resumed: its new agent (this process) takes a new lease, epoch 3.
    _rec, lease = SessionStore(recovered).start(SID, ProcessIdentity.current(), pid_source="test")
    assert lease.epoch == 3
    r = cli(recovered, *STEP, sid=SID)
    assert r.returncode == 0, r.stderr


def test_another_session_is_not_fenced_by_this_sessions_epochs(recovered: StateDir) -> None:
    r = cli(recovered, *STEP, sid="another-session")
    assert r.returncode == 0, r.stderr


def test_verify_names_an_old_lease_put_back(tmp_path: Any) -> None:
    state = StateDir(str(tmp_path / "state")).ensure()
    kill9(start_agent(state, SID, WID))
    old = str(tmp_path / "old.lease")
    shutil.copy2(state.lease(SID), old)  # epoch 1, as a backup would have it
    assert cli(state, "recover", SID).returncode == 0
    r = cli(state, "verify")
    assert r.returncode == 0, r.stdout  # control: the recovered state verifies
    shutil.copy2(old, state.lease(SID))
    r = cli(state, "verify")
    assert r.returncode == 1
    [p] = [p for p in orjson.loads(r.stdout)["problems"] if p["kind"] == "stale_lease"]
    assert p["path"] == state.lease(SID) and "epoch 1 is older than epoch 2" in p["detail"]
    # and the put-back lease does not unfence the old session
    r = cli(state, *STEP, sid=SID)
    assert r.returncode == 4, r.stderr
