"""Leases: acquisition, epochs, staleness with real processes, atomic breaking, fencing."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from _session_helpers import SID, kill9, spawn, start_agent, wait_line, write_lease

from claude_state.domain import leases
from claude_state.domain.procinfo import ProcessIdentity, process_start_token
from claude_state.domain.staleness import Verdict
from claude_state.errors import FrameError, LeaseHeldError, StaleEpochError
from claude_state.storage.layout import StateDir


@pytest.fixture
def state(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "state")).ensure()


def me() -> ProcessIdentity:
    return ProcessIdentity.current()


def dead_identity() -> ProcessIdentity:
    """The identity of a real process that was killed with -9."""
    proc = spawn("import time; print('up', flush=True); time.sleep(600)")
    wait_line(proc, "up")
    ident = ProcessIdentity.current(proc.pid)
    kill9(proc)
    return ident


def test_first_acquire_and_reacquire_by_same_process(state: StateDir) -> None:
    a = leases.acquire(state, SID, me())
    assert a.epoch == 1
    b = leases.acquire(state, SID, me())  # /clear, compaction: same agent process
    assert b.epoch == 1 and b.heartbeat_at >= a.heartbeat_at
    rec = leases.read(state, SID)
    assert rec is not None and rec.held and rec.info.owner == me()


def test_live_owner_is_never_taken_over(state: StateDir) -> None:
    agent = start_agent(state)
    try:
        with pytest.raises(LeaseHeldError) as info:
            leases.acquire(state, SID, me())
        assert info.value.pid == agent.pid and info.value.exit_code == 4
        rec = leases.read(state, SID)
        assert rec is not None
        assert leases.verdict(rec) == Verdict.ALIVE
        assert leases.break_stale(state, SID, rec.epoch) is False
    finally:
        kill9(agent)


def test_killed_owner_is_dead_and_resume_gets_new_epoch(state: StateDir) -> None:
    agent = start_agent(state)
    kill9(agent)
    rec = leases.read(state, SID)
    assert rec is not None and leases.verdict(rec) == Verdict.DEAD
    resumed = leases.acquire(state, SID, me())
    assert resumed.epoch == rec.epoch + 1


def test_pid_reuse_is_stale(state: StateDir) -> None:
    # Our own (live) pid with another start time: the pid was handed to another process.
    here = me()
    write_lease(
        state, SID, pid=os.getpid(), start_time="ticks:1", boot_id=here.boot_id, host=here.host
    )
    rec = leases.read(state, SID)
    assert rec is not None and leases.verdict(rec) == Verdict.PID_REUSED
    assert leases.acquire(state, SID, here).epoch == 2


def test_other_boot_is_stale(state: StateDir) -> None:
    here = me()
    write_lease(
        state,
        SID,
        pid=os.getpid(),
        start_time=here.start_time,
        boot_id="00000000-0000-0000-0000-000000000000",
        host=here.host,
    )
    rec = leases.read(state, SID)
    assert rec is not None and leases.verdict(rec) == Verdict.REBOOTED


def test_other_host_held_until_heartbeat_ttl(state: StateDir) -> None:
    write_lease(
        state,
        SID,
        pid=4242,
        start_time="ticks:9",
        boot_id="b",
        host="elsewhere",
        heartbeat_at=time.time() - 60,
        ttl=120,
    )
    rec = leases.read(state, SID)
    assert rec is not None and leases.verdict(rec) == Verdict.REMOTE_ALIVE
    with pytest.raises(LeaseHeldError):
        leases.acquire(state, SID, me())
    assert leases.break_stale(state, SID, 1) is False
    write_lease(
        state,
        SID,
        pid=4242,
        start_time="ticks:9",
        boot_id="b",
        host="elsewhere",
        heartbeat_at=time.time() - 121,
        ttl=120,
    )
    rec = leases.read(state, SID)
    assert rec is not None and leases.verdict(rec) == Verdict.REMOTE_EXPIRED
    assert leases.break_stale(state, SID, 1) is True


PERM_CHECK = """
import os, sys
from claude_state.domain import leases
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.staleness import LeaseInfo
if os.getuid() == 0:
    os.setgid(65534); os.setuid(65534)
here = ProcessIdentity.current()
owner = ProcessIdentity(1, sys.argv[1], here.boot_id, here.host, here.pid_ns)
try:
    os.kill(1, 0); print("no-eperm")
except PermissionError:
    print("eperm")
rec = leases.LeaseRecord(LeaseInfo("s", owner, 1, 0.0, 0.0))
print("verdict", leases.verdict(rec).value, flush=True)
"""


def test_permission_denied_means_alive() -> None:
    token = process_start_token(1)
    if token is None:
        pytest.skip("pid 1 not readable here")
    proc = spawn(PERM_CHECK, token)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    if "no-eperm" in out:
        pytest.skip("cannot get EPERM on pid 1 in this sandbox")
    assert "verdict alive" in out


def test_release_heartbeat_and_epochs(state: StateDir) -> None:
    a = leases.acquire(state, SID, me())
    leases.heartbeat(state, SID, a.epoch)
    with pytest.raises(StaleEpochError):
        leases.heartbeat(state, SID, a.epoch - 1)
    with pytest.raises(StaleEpochError):
        leases.release(state, SID, a.epoch + 1)
    assert leases.release(state, SID, a.epoch) is True
    assert leases.release(state, SID, a.epoch) is False  # idempotent
    with pytest.raises(StaleEpochError):
        leases.heartbeat(state, SID, a.epoch)  # a released lease has no heartbeat
    assert leases.acquire(state, SID, me()).epoch == a.epoch + 1


def test_check_epoch_fences_older_writers(state: StateDir) -> None:
    ident = dead_identity()
    old = leases.acquire(state, SID, ident)
    leases.check_epoch(state, SID, old.epoch)
    assert leases.break_stale(state, SID, old.epoch) is True
    with pytest.raises(StaleEpochError) as info:
        leases.check_epoch(state, SID, old.epoch)
    assert info.value.exit_code == 4
    leases.check_epoch(state, SID, old.epoch + 1)


def test_break_requires_expected_epoch(state: StateDir) -> None:
    ident = dead_identity()
    lease = leases.acquire(state, SID, ident)
    assert leases.break_stale(state, SID, lease.epoch + 5) is False
    assert leases.break_stale(state, SID, lease.epoch) is True
    assert leases.break_stale(state, SID, lease.epoch) is False
    rec = leases.read(state, SID)
    assert rec is not None and rec.released and rec.reason == "broken"
    assert rec.epoch == lease.epoch + 1


def test_damaged_lease_is_an_error_not_a_verdict(state: StateDir) -> None:
    leases.acquire(state, SID, me())
    path = state.lease(SID)
    with open(path, "r+b") as f:
        f.seek(60)
        b = f.read(1)
        f.seek(60)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(FrameError):
        leases.read(state, SID)


BREAKER = """
import sys, time
from claude_state.storage.layout import StateDir
from claude_state.domain import leases
state = StateDir(sys.argv[1])
start_at = float(sys.argv[3])
leases._after_check = lambda: time.sleep(0.2)
while time.time() < start_at:
    time.sleep(0.001)
print("won" if leases.break_stale(state, sys.argv[2], 1) else "lost", flush=True)
"""


def race(state: StateDir, n: int, env: dict[str, str] | None = None) -> list[str]:
    ident = dead_identity()
    leases.acquire(state, SID, ident)
    start_at = f"{time.time() + 1.0:.6f}"
    old = dict(os.environ)
    if env:
        os.environ.update(env)
    try:
        procs = [spawn(BREAKER, state.root, SID, start_at) for _ in range(n)]
    finally:
        os.environ.clear()
        os.environ.update(old)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(out.strip())
    return results


def test_concurrent_breakers_exactly_one_wins(state: StateDir) -> None:
    results = race(state, 4)
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    rec = leases.read(state, SID)
    assert rec is not None and rec.epoch == 2


def test_race_without_the_lock_has_several_winners(tmp_path: Any) -> None:
    # Protection off: shows that the test above does catch a non-atomic break.
    state = StateDir(str(tmp_path / "nolock")).ensure()
    results = race(state, 4, {"CLAUDE_STATE_UNSAFE_NO_LOCKS": "1"})
    assert results.count("won") > 1


def test_caller_session_and_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    assert leases.caller_session_id({"CLAUDE_CODE_SESSION_ID": SID}) == SID
    assert leases.caller_session_id({"CLAUDE_CODE_SESSION_ID": "../x"}) is None
    assert leases.caller_session_id({}) is None
    owner, source = leases.caller_owner({"CLAUDE_PID": str(os.getpid())})
    assert owner.pid == os.getpid() and source == "env"
