"""Lease staleness (RELIABILITY.md §5): a live owner is never declared dead.

Every rule is simulated with a fake probe, and checked again with real processes: a
live child, a killed and reaped one, a zombie, a reused pid (a real live pid with another
start token), another boot, another host, EPERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import orjson
import pytest

from claude_state.domain import procinfo
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.staleness import (
    DEFAULT_TTL,
    HostInfo,
    LeaseInfo,
    Verdict,
    assess,
    is_stale,
)
from claude_state.errors import InvalidIdError, InvalidInputError

NOW = 1_800_000_000.0
HERE = HostInfo(host="here", boot_id="boot-1", pid_ns="pid:[1]")
HAVE_PROC = os.path.exists("/proc/self/stat")


class FakeProbe:
    """A process table: pid -> start token, or None for "alive but unreadable" (EPERM)."""

    def __init__(self, table: dict[int, str | None], *, failing: bool = False) -> None:
        self.table = table
        self.failing = failing  # pid_alive can't tell (an unexpected OSError)
        self.calls: list[tuple[str, int]] = []

    def pid_alive(self, pid: int) -> bool | None:
        self.calls.append(("pid_alive", pid))
        if self.failing:
            return None
        return pid in self.table

    def process_start_token(self, pid: int) -> str | None:
        self.calls.append(("token", pid))
        return self.table.get(pid)


def lease(
    pid: int = 100,
    token: str | None = "ticks:5000",
    *,
    host: str = "here",
    boot: str = "boot-1",
    pid_ns: str | None = "pid:[1]",
    heartbeat_at: float = NOW,
    ttl: float = DEFAULT_TTL,
) -> LeaseInfo:
    owner = ProcessIdentity(pid=pid, start_time=token, boot_id=boot, host=host, pid_ns=pid_ns)
    return LeaseInfo(
        "sess-1", owner, epoch=3, heartbeat_at=heartbeat_at, acquired_at=NOW - 60, ttl=ttl
    )


def check(lease_: LeaseInfo, probe: FakeProbe, now: float = NOW) -> Verdict:
    return assess(lease_, here=HERE, now=now, probe=probe)


# -- the rules, simulated ------------------------------------------------------------------


def test_alive_when_pid_and_token_match() -> None:
    assert check(lease(), FakeProbe({100: "ticks:5000"})) is Verdict.ALIVE


def test_dead_when_pid_gone() -> None:
    assert check(lease(), FakeProbe({})) is Verdict.DEAD


def test_pid_reused_when_token_differs() -> None:
    assert check(lease(), FakeProbe({100: "ticks:9999"})) is Verdict.PID_REUSED


def test_pid_reuse_missed_without_token() -> None:
    """The protection off: a lease recorded without a start token can't see a reuse."""
    verdict = check(lease(token=None), FakeProbe({100: "ticks:9999"}))
    assert verdict is Verdict.UNKNOWN and not is_stale(verdict)


def test_permission_denied_is_alive() -> None:
    """EPERM: kill() says alive, the start time is unreadable -> alive, never dead."""
    assert check(lease(), FakeProbe({100: None})) is Verdict.ALIVE


def test_exited_between_probes_is_dead() -> None:
    class Dying(FakeProbe):
        def pid_alive(self, pid: int) -> bool | None:
            self.calls.append(("pid_alive", pid))
            return len(self.calls) == 1  # alive at first look, gone at the second

    assert check(lease(), Dying({})) is Verdict.DEAD


def test_probe_failure_is_unknown() -> None:
    verdict = check(lease(), FakeProbe({}, failing=True))
    assert verdict is Verdict.UNKNOWN and not is_stale(verdict)


def test_token_schemes_differ_is_unknown() -> None:
    assert check(lease(token="ctime:1.5"), FakeProbe({100: "ticks:5000"})) is Verdict.UNKNOWN


def test_rebooted_when_boot_id_differs() -> None:
    probe = FakeProbe({100: "ticks:5000"})  # same pid and token after the reboot
    assert check(lease(boot="boot-0"), probe) is Verdict.REBOOTED
    assert probe.calls == []  # the pid is not even looked at


def test_btime_boot_ids_tolerate_one_second() -> None:
    here = HostInfo("here", "btime:1000", None)
    live = FakeProbe({100: "ctime:1.5"})
    near = lease(token="ctime:1.5", boot="btime:1001", pid_ns=None)
    assert assess(near, here=here, now=NOW, probe=live) is Verdict.ALIVE
    far = lease(token="ctime:1.5", boot="btime:900", pid_ns=None)
    assert assess(far, here=here, now=NOW, probe=live) is Verdict.REBOOTED


def test_unknown_boot_id_relies_on_token() -> None:
    assert check(lease(boot=""), FakeProbe({100: "ticks:5000"})) is Verdict.ALIVE
    assert check(lease(boot=""), FakeProbe({100: "ticks:1"})) is Verdict.PID_REUSED


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, Verdict.REMOTE_ALIVE),
        (DEFAULT_TTL - 1, Verdict.REMOTE_ALIVE),
        (DEFAULT_TTL, Verdict.REMOTE_ALIVE),  # "older than the TTL" is strict
        (DEFAULT_TTL + 0.001, Verdict.REMOTE_EXPIRED),
        (-3600.0, Verdict.REMOTE_ALIVE),  # heartbeat in the future: clock skew, still held
    ],
)
def test_other_host_goes_by_heartbeat(age: float, expected: Verdict) -> None:
    probe = FakeProbe({})  # pid 100 does not exist here, which must not matter
    assert check(lease(host="there", boot="boot-9", heartbeat_at=NOW - age), probe) is expected
    assert probe.calls == []


def test_other_host_respects_lease_ttl() -> None:
    remote = lease(host="there", boot="boot-9", heartbeat_at=NOW - 30, ttl=10)
    assert check(remote, FakeProbe({})) is Verdict.REMOTE_EXPIRED


def test_other_pid_namespace_goes_by_heartbeat() -> None:
    """A container on this kernel: same host and boot, pids of another namespace."""
    fresh = lease(pid_ns="pid:[2]")
    assert check(fresh, FakeProbe({})) is Verdict.REMOTE_ALIVE
    old = lease(pid_ns="pid:[2]", heartbeat_at=NOW - 1000)
    assert check(old, FakeProbe({100: "ticks:5000"})) is Verdict.REMOTE_EXPIRED


def test_renamed_host_same_boot_and_namespace_is_local() -> None:
    """DHCP renamed the machine: boot id + pid namespace still prove it is this one."""
    renamed = lease(host="old-name", heartbeat_at=NOW - 10_000)
    assert check(renamed, FakeProbe({100: "ticks:5000"})) is Verdict.ALIVE
    assert check(renamed, FakeProbe({})) is Verdict.DEAD


def test_is_stale() -> None:
    stale = {Verdict.DEAD, Verdict.PID_REUSED, Verdict.REBOOTED, Verdict.REMOTE_EXPIRED}
    for verdict in Verdict:
        assert is_stale(verdict) is (verdict in stale)
        assert is_stale(verdict.value) is (verdict in stale)
    assert is_stale("nonsense") is False


def test_verdict_is_a_string() -> None:
    assert str(Verdict.PID_REUSED) == "pid_reused"
    assert json.dumps(Verdict.REMOTE_EXPIRED) == '"remote_expired"'


# -- the rules, with real processes ------------------------------------------------------------


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


def real_lease(ident: ProcessIdentity, **changes: object) -> LeaseInfo:
    data = {**ident.to_dict(), **changes}
    owner = ProcessIdentity.from_dict(data)
    return LeaseInfo("sess-real", owner, epoch=1, heartbeat_at=time.time(), acquired_at=time.time())


def test_real_live_child_is_alive(child: subprocess.Popen[bytes]) -> None:
    ident = ProcessIdentity.current(child.pid)
    assert assess(real_lease(ident)) is Verdict.ALIVE
    assert assess(real_lease(ProcessIdentity.current())) is Verdict.ALIVE  # ourselves


def test_real_killed_and_reaped_child_is_dead(child: subprocess.Popen[bytes]) -> None:
    held = real_lease(ProcessIdentity.current(child.pid))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert assess(held) is Verdict.DEAD


@pytest.mark.skipif(not HAVE_PROC, reason="needs /proc to see the zombie state")
def test_real_zombie_child_is_dead(child: subprocess.Popen[bytes]) -> None:
    held = real_lease(ProcessIdentity.current(child.pid))
    child.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:  # exited but not reaped: kill(pid, 0) still succeeds
        with open(f"/proc/{child.pid}/stat", "rb") as f:
            if procinfo.parse_stat(f.read()).state == "Z":
                break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert assess(held) is Verdict.DEAD


def test_real_pid_reuse(child: subprocess.Popen[bytes]) -> None:
    """The lease names the child's pid with another process's start token: exactly what
    a reused pid looks like."""
    token = procinfo.process_start_token(child.pid)
    assert token is not None
    scheme, value = token.split(":", 1)
    other = (
        f"{scheme}:{float(value) - 1.0!r}" if scheme == "ctime" else f"{scheme}:{int(value) - 1}"
    )
    held = real_lease(ProcessIdentity.current(child.pid), start_time=other)
    assert assess(held) is Verdict.PID_REUSED


def test_real_other_boot_is_rebooted() -> None:
    held = real_lease(ProcessIdentity.current(), boot_id="00000000-0000-0000-0000-000000000000")
    assert assess(held) is Verdict.REBOOTED  # even though our own pid is alive


def test_real_other_host(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.wait()  # the pid is dead here, but on another host that means nothing
    ident = ProcessIdentity.current
    held = real_lease(ident(), host="elsewhere.example", boot_id="other-boot", pid=child.pid)
    assert assess(held) is Verdict.REMOTE_ALIVE
    expired = LeaseInfo(
        held.session_id, held.owner, 1, heartbeat_at=time.time() - 121, acquired_at=0.0
    )
    assert assess(expired) is Verdict.REMOTE_EXPIRED


def test_real_permission_denied_is_alive(
    child: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root never gets EPERM from kill(pid, 0), so it is produced by patching os.kill; the
    start time is made unreadable too, as for another user's process under hidepid."""
    held = real_lease(ProcessIdentity.current(child.pid))

    def deny(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", deny)
    assert assess(held) is Verdict.ALIVE
    monkeypatch.setattr(procinfo, "_read_stat", lambda pid: None)
    monkeypatch.setitem(procinfo._cache, "have_proc", True)
    assert procinfo.process_start_token(child.pid) is None
    assert assess(held) is Verdict.ALIVE


def test_assess_defaults_use_this_host() -> None:
    here = HostInfo.current()
    assert (here.host, here.boot_id, here.pid_ns) == (
        procinfo.hostname(),
        procinfo.boot_id(),
        procinfo.pid_namespace(),
    )
    # A ProcessIdentity also describes "here".
    ident = ProcessIdentity.current()
    assert assess(real_lease(ident), here=ident) is Verdict.ALIVE


def test_assess_is_fast() -> None:
    held = real_lease(ProcessIdentity.current())
    assess(held)
    start = time.perf_counter()
    for _ in range(200):
        assess(held)
    assert (time.perf_counter() - start) / 200 < 0.005  # ~20 us in practice


# -- LeaseInfo serialisation -------------------------------------------------------------------

GOOD = lease().to_dict()


def test_lease_round_trip_through_json() -> None:
    original = lease(token="ctime:1717171717.123456")
    back = LeaseInfo.from_dict(orjson.loads(orjson.dumps(original.to_dict())))
    assert back == original
    assert back.owner.start_time == "ctime:1717171717.123456"


def test_lease_defaults_and_extra_keys() -> None:
    data = {k: v for k, v in GOOD.items() if k != "ttl"}
    data["future_field"] = [1, 2]
    loaded = LeaseInfo.from_dict(data)
    assert loaded.ttl == DEFAULT_TTL
    assert LeaseInfo.from_dict({**GOOD, "heartbeat_at": 5}).heartbeat_at == 5.0


def test_with_heartbeat() -> None:
    held = lease(heartbeat_at=1.0)
    assert held.with_heartbeat(NOW + 5).heartbeat_at == NOW + 5
    assert held.with_heartbeat().heartbeat_at >= time.time() - 5
    assert held.heartbeat_at == 1.0  # frozen: the original is unchanged


@pytest.mark.parametrize(
    "patch",
    [
        {"epoch": -1},
        {"epoch": "3"},
        {"epoch": True},
        {"epoch": 1.0},
        {"heartbeat_at": "now"},
        {"heartbeat_at": None},
        {"heartbeat_at": float("nan")},
        {"acquired_at": float("inf")},
        {"acquired_at": False},
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": "120"},
        {"owner": None},
        {"owner": {"pid": "x"}},
        {"owner": {**GOOD["owner"], "pid": 0}},  # type: ignore[dict-item]
    ],
)
def test_lease_from_dict_rejects_bad_fields(patch: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        LeaseInfo.from_dict({**GOOD, **patch})


@pytest.mark.parametrize("missing", ["session_id", "owner", "epoch", "heartbeat_at", "acquired_at"])
def test_lease_from_dict_missing_field(missing: str) -> None:
    with pytest.raises(InvalidInputError):
        LeaseInfo.from_dict({k: v for k, v in GOOD.items() if k != missing})


@pytest.mark.parametrize("session_id", ["../etc", "", 5, None, "a/b", ".hidden"])
def test_lease_from_dict_rejects_bad_session_id(session_id: object) -> None:
    with pytest.raises(InvalidIdError):
        LeaseInfo.from_dict({**GOOD, "session_id": session_id})


@pytest.mark.parametrize("data", [None, [], "lease", 1])
def test_lease_from_dict_not_an_object(data: object) -> None:
    with pytest.raises(InvalidInputError):
        LeaseInfo.from_dict(data)


# -- stale only when truly stale: a property over every fake situation ----------------------


def test_live_local_owner_never_stale() -> None:
    """Whatever the heartbeat, TTL or token scheme, a matching live local pid is held."""
    for age in (0.0, 1e3, 1e9):
        for ttl in (0.001, 1.0, DEFAULT_TTL):
            for token in ("ticks:1", "ctime:2.5"):
                held = lease(token=token, heartbeat_at=NOW - age, ttl=ttl)
                for probe in (FakeProbe({100: token}), FakeProbe({100: None})):
                    assert not is_stale(check(held, probe))


@pytest.mark.parametrize("pid_ns", [None, "pid:[2]"])
def test_other_host_sharing_boot_id_without_namespace_proof_is_remote(pid_ns: str | None) -> None:
    """Another host name with our boot id but no matching namespace: not provably us."""
    remote = lease(host="there", pid_ns=pid_ns, heartbeat_at=NOW - 1000)
    assert check(remote, FakeProbe({100: "ticks:5000"})) is Verdict.REMOTE_EXPIRED


def _unprivileged_python() -> list[str] | None:
    """A command prefix running Python as ``nobody`` with this source tree importable."""
    setpriv = shutil.which("setpriv")
    if not HAVE_PROC or os.geteuid() != 0 or setpriv is None:
        return None
    for exe in (sys.executable, "/usr/bin/python3"):
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", exe]
        check = [*cmd, "-c", "import sys; assert sys.version_info >= (3, 11)"]
        ok = subprocess.run(check, capture_output=True)
        if ok.returncode == 0:
            return cmd
    return None


def test_real_eperm_from_an_unprivileged_process(child: subprocess.Popen[bytes]) -> None:
    """Real EPERM: a ``nobody`` process probes our root-owned child (alive) and its pid
    once reaped (dead). Needs root to drop privileges, so it is skipped otherwise."""
    cmd = _unprivileged_python()
    if cmd is None:
        pytest.skip("needs root, setpriv and a Python that nobody can run")
    held = real_lease(ProcessIdentity.current(child.pid))
    code = (
        "import json, os, sys\n"
        "from claude_state.domain import procinfo, staleness\n"
        "lease = staleness.LeaseInfo.from_dict(json.loads(sys.argv[1]))\n"
        "try:\n"
        "    os.kill(lease.owner.pid, 0)\n"
        "    eperm = False\n"
        "except PermissionError:\n"
        "    eperm = True\n"
        "except ProcessLookupError:\n"
        "    eperm = None\n"
        "print(json.dumps([eperm, procinfo.pid_alive(lease.owner.pid),"
        " staleness.assess(lease).value]))\n"
    )
    # `nobody` may not be able to read this checkout (a clone under a 0700 directory):
    # give it a world-readable copy of the package to import.
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(procinfo.__file__)))
    readable = tempfile.mkdtemp(prefix="cs-eperm-")
    shutil.copytree(
        pkg, os.path.join(readable, "claude_state"), ignore=shutil.ignore_patterns("__pycache__")
    )
    for dirpath, _dirs, files in os.walk(readable):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": readable}
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    def probe() -> list[object]:
        arg = json.dumps(held.to_dict())
        out = subprocess.run([*cmd, "-c", code, arg], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        result: list[object] = json.loads(out.stdout)
        return result

    try:
        assert probe() == [True, True, "alive"]
        child.kill()
        child.wait()
        assert probe() == [None, False, "dead"]
    finally:
        shutil.rmtree(readable, ignore_errors=True)
