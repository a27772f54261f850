"""Process identity: /proc parsing, liveness, start-time tokens, finding the agent.

Real child processes wherever the behaviour depends on the kernel (alive, killed and
reaped, zombie); a synthetic process table for the ancestry rules.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from claude_state.domain import procinfo
from claude_state.domain.procinfo import (
    ProcessIdentity,
    ProcessInfo,
    default_is_agent,
    find_agent_pid,
    parse_stat,
    pid_alive,
    process_start_time,
    process_start_token,
)
from claude_state.errors import InvalidInputError, NotFoundError

HAVE_PROC = os.path.exists("/proc/self/stat")
needs_proc = pytest.mark.skipif(not HAVE_PROC, reason="needs a Linux /proc")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start sleeping Python children; all are killed and reaped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_stat(f.read()).state
    except OSError:
        return None


def _wait_for_state(pid: int, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(pid) != state:
        assert time.monotonic() < deadline, f"pid {pid} never reached state {state}"
        time.sleep(0.01)


def _stat_line(comm: str, state: str = "S", ppid: int = 42, starttime: int = 123456) -> bytes:
    # Fields 3..22 (state..starttime), then a few more, as the kernel writes them.
    fields = [state, str(ppid), "1", "1", "0", "-1", "4194304"] + ["0"] * 12 + [str(starttime)]
    fields += ["3133440", "382", "18446744073709551615"]
    return f"777 ({comm}) {' '.join(fields)}\n".encode()


# -- parse_stat --------------------------------------------------------------------------


def test_parse_stat_plain() -> None:
    st = parse_stat(_stat_line("cat", "R", 4100, 36423))
    assert (st.pid, st.comm, st.state, st.ppid, st.starttime) == (777, "cat", "R", 4100, 36423)


@pytest.mark.parametrize(
    "comm",
    ["a b", "x) S 1 2 3 (y", "((", "))", ") Z 9 9", "2.1.240", "tmux: server", ""],
)
def test_parse_stat_comm_with_spaces_and_parens(comm: str) -> None:
    """comm may contain ``) `` and digits: only the last ``)`` ends it."""
    st = parse_stat(_stat_line(comm, "S", 42, 987654321))
    assert st.comm == comm
    assert (st.state, st.ppid, st.starttime) == ("S", 42, 987654321)


def test_parse_stat_naive_split_would_be_wrong() -> None:
    """The protection off: splitting on whitespace reads the wrong field for such a comm."""
    line = _stat_line("x) S 1 2 3 (y", "S", 42, 555)
    naive = line.split()
    assert naive[21] != b"555"  # field 22 by position is garbage
    assert parse_stat(line).starttime == 555


def test_parse_stat_non_utf8_comm() -> None:
    line = b"777 (\xff\xfe) S 42" + b" 0" * 17 + b" 99 1 2\n"
    st = parse_stat(line)
    assert st.starttime == 99 and st.ppid == 42 and "\ufffd" in st.comm


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"garbage",
        b"12 (x S 1 2",
        b"12 (x) S 1 2 3",
        b"x (y) S" + b" 1" * 25,
        b"1 (y) S z" + b" 1" * 25,
    ],
)
def test_parse_stat_malformed(line: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_stat(line)


@needs_proc
def test_parse_stat_real_self() -> None:
    with open("/proc/self/stat", "rb") as f:
        st = parse_stat(f.read())
    assert st.pid > 0 and st.state in "RS" and st.starttime > 0


# -- host facts ----------------------------------------------------------------------------


def test_boot_id_stable_and_cached() -> None:
    first = procinfo.boot_id()
    assert first and first == procinfo.boot_id()
    if HAVE_PROC:
        with open("/proc/sys/kernel/random/boot_id") as f:
            assert first == f.read().strip()


def test_hostname_matches_socket() -> None:
    assert procinfo.hostname() == socket.gethostname()


@needs_proc
def test_pid_namespace() -> None:
    assert procinfo.pid_namespace() == os.readlink("/proc/self/ns/pid")


def test_same_boot() -> None:
    assert procinfo.same_boot("a", "a")
    assert not procinfo.same_boot("a", "b")
    assert procinfo.same_boot("", "b")  # unknown: the start token still guards
    assert procinfo.same_boot("btime:100", "btime:101")  # clock-derived jitter
    assert not procinfo.same_boot("btime:100", "btime:200")
    assert not procinfo.same_boot("btime:100", "btime:x")


# -- pid_alive -----------------------------------------------------------------------------


@pytest.mark.parametrize("pid", [0, -1, -12345, True, False, 2**40])
def test_pid_alive_rejects_group_and_bogus_pids(pid: int) -> None:
    """0 and negative pids address process groups in kill(2): never probe them."""
    assert pid_alive(pid) is False


def test_pid_alive_self() -> None:
    assert pid_alive(os.getpid()) is True


def test_real_child_alive_then_killed_and_reaped(
    spawn: Callable[[], subprocess.Popen[bytes]],
) -> None:
    p = spawn()
    assert pid_alive(p.pid) is True
    token = process_start_token(p.pid)
    assert token is not None
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert pid_alive(p.pid) is False
    assert process_start_token(p.pid) is None
    assert process_start_time(p.pid) is None


@needs_proc
def test_zombie_counts_as_dead(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    p.send_signal(signal.SIGKILL)
    _wait_for_state(p.pid, "Z")  # exited, not reaped: the pid still answers kill(pid, 0)
    os.kill(p.pid, 0)  # the protection off: a bare kill() probe calls it alive
    assert pid_alive(p.pid) is False
    assert process_start_token(p.pid) is None


def test_permission_error_means_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """EPERM: the pid exists and belongs to another user. Simulated, since root gets no
    EPERM from kill(pid, 0)."""

    def deny(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", deny)
    assert pid_alive(os.getpid()) is True


def test_lookup_error_means_dead_other_oserror_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(pid: int, sig: int) -> None:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(os, "kill", gone)
    assert pid_alive(12345) is False

    def weird(pid: int, sig: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "kill", weird)
    assert pid_alive(12345) is None


@pytest.mark.skipif(IS_ROOT or not HAVE_PROC, reason="real EPERM needs a non-root user")
def test_real_permission_denied_on_init_is_alive() -> None:
    assert pid_alive(1) is True


# -- start-time token ----------------------------------------------------------------------


@needs_proc
def test_token_is_raw_ticks_and_stable(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    tokens = {process_start_token(p.pid) for _ in range(50)}
    assert len(tokens) == 1
    (token,) = tokens
    assert token is not None and token.startswith("ticks:")
    with open(f"/proc/{p.pid}/stat", "rb") as f:
        assert token == f"ticks:{parse_stat(f.read()).starttime}"
    assert process_start_token(os.getpid()) != token  # another process, another token


@needs_proc
def test_start_time_close_to_psutil(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    import psutil

    p = spawn()
    approx = process_start_time(p.pid)
    assert approx is not None
    assert abs(approx - psutil.Process(p.pid).create_time()) < 1.0


@pytest.fixture
def no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the psutil fallback (what macOS runs)."""
    monkeypatch.setitem(procinfo._cache, "have_proc", False)


@pytest.mark.usefixtures("no_proc")
def test_psutil_fallback(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    token = process_start_token(p.pid)
    assert token is not None and token.startswith("ctime:")
    assert token == process_start_token(p.pid)
    assert process_start_time(p.pid) == float(token.removeprefix("ctime:"))
    info = procinfo.read_process_info(p.pid)
    assert info is not None and info.ppid == os.getpid()
    p.kill()
    p.wait()
    assert process_start_token(p.pid) is None
    assert procinfo.read_process_info(p.pid) is None


@needs_proc
@pytest.mark.usefixtures("no_proc")
def test_psutil_fallback_zombie(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    p.kill()
    _wait_for_state(p.pid, "Z")
    assert pid_alive(p.pid) is False
    assert process_start_token(p.pid) is None


@needs_proc
def test_fast_path_never_imports_psutil(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from claude_state.domain import procinfo, staleness\n"
        "ident = procinfo.ProcessIdentity.current()\n"
        "pid, src = procinfo.find_agent_pid({})\n"
        "lease = staleness.LeaseInfo('s1', ident, 1, 0.0, 0.0)\n"
        "assert staleness.assess(lease) == 'alive'\n"
        "assert procinfo.process_start_time(pid) is not None or True\n"
        "print('psutil' in sys.modules, 'socket' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- ProcessIdentity -----------------------------------------------------------------------


def test_identity_current_and_round_trip() -> None:
    ident = ProcessIdentity.current()
    assert ident.pid == os.getpid()
    assert ident.start_time == process_start_token(os.getpid())
    assert ident.host == procinfo.hostname() and ident.boot_id == procinfo.boot_id()
    data = json.loads(json.dumps(ident.to_dict()))
    assert ProcessIdentity.from_dict(data) == ident


def test_identity_current_of_dead_pid(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    assert ProcessIdentity.current(p.pid).pid == p.pid
    p.kill()
    p.wait()
    with pytest.raises(NotFoundError):
        ProcessIdentity.current(p.pid)


GOOD_IDENT = {"pid": 10, "start_time": "ticks:5", "boot_id": "b", "host": "h", "pid_ns": None}


@pytest.mark.parametrize(
    "patch",
    [
        {"pid": "10"},
        {"pid": True},
        {"pid": 0},
        {"pid": -3},
        {"pid": 1.5},
        {"start_time": 5},
        {"boot_id": None},
        {"host": 3},
        {"pid_ns": 7},
    ],
)
def test_identity_from_dict_rejects_bad_fields(patch: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        ProcessIdentity.from_dict({**GOOD_IDENT, **patch})


@pytest.mark.parametrize("missing", ["pid", "boot_id", "host"])
def test_identity_from_dict_missing_field(missing: str) -> None:
    data = {k: v for k, v in GOOD_IDENT.items() if k != missing}
    with pytest.raises(InvalidInputError):
        ProcessIdentity.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_identity_from_dict_not_an_object(data: object) -> None:
    with pytest.raises(InvalidInputError):
        ProcessIdentity.from_dict(data)


def test_identity_from_dict_optional_and_extra_fields() -> None:
    ident = ProcessIdentity.from_dict({"pid": 10, "boot_id": "b", "host": "h", "future": 1})
    assert ident == ProcessIdentity(10, None, "b", "h", None)


# -- find_agent_pid: CLAUDE_PID --------------------------------------------------------------


def test_claude_pid_env_honoured(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    assert find_agent_pid({"CLAUDE_PID": str(p.pid)}) == (p.pid, "env")
    assert find_agent_pid({"CLAUDE_PID": f" {p.pid}\n"}) == (p.pid, "env")


@pytest.mark.parametrize("value", ["", "abc", "-5", "0", "1", "12x", "1e3", "\u0663", "9" * 40])
def test_claude_pid_garbage_falls_back(value: str) -> None:
    pid, source = find_agent_pid({"CLAUDE_PID": value}, is_agent=lambda i: False)
    assert source != "env"
    assert pid > 0


def test_claude_pid_dead_falls_back(spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
    p = spawn()
    p.kill()
    p.wait()
    _pid, source = find_agent_pid({"CLAUDE_PID": str(p.pid)}, is_agent=lambda i: False)
    assert source != "env"


def test_default_env_is_os_environ(
    monkeypatch: pytest.MonkeyPatch, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    p = spawn()
    monkeypatch.setenv("CLAUDE_PID", str(p.pid))
    assert find_agent_pid() == (p.pid, "env")


# -- find_agent_pid: ancestry on a synthetic process table ----------------------------------

OWN_PY = os.path.realpath(sys.executable)


def _table(*procs: ProcessInfo) -> Callable[[int], ProcessInfo | None]:
    by_pid = {p.pid: p for p in procs}
    return by_pid.get


def _walk(
    *procs: ProcessInfo, is_agent: Callable[[ProcessInfo], bool] = default_is_agent
) -> tuple[int, str]:
    return find_agent_pid({}, start_pid=procs[0].pid, read=_table(*procs), is_agent=is_agent)


def test_walk_past_shells_to_node_cli() -> None:
    node_cli = "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"
    assert _walk(
        ProcessInfo(50, 40, "sh", "/usr/bin/dash", ("sh", "-c", "x")),
        ProcessInfo(40, 30, "timeout", "/usr/bin/timeout"),
        ProcessInfo(30, 20, "node", "/usr/bin/node", ("node", node_cli)),
        ProcessInfo(20, 1, "bash", "/usr/bin/bash"),
    ) == (30, "ancestry")


def test_walk_finds_native_build_named_by_version() -> None:
    exe = "/home/u/.local/share/claude/versions/2.1.240"
    assert _walk(
        ProcessInfo(50, 40, "bash", "/usr/bin/bash"),
        ProcessInfo(40, 30, "uv", "/home/u/.cargo/bin/uv"),
        ProcessInfo(30, 20, "2.1.240", exe, (exe,)),
        ProcessInfo(20, 1, "zsh", "/bin/zsh"),
    ) == (30, "ancestry")


def test_walk_finds_claude_by_name() -> None:
    assert _walk(
        ProcessInfo(50, 30, "fish", "/usr/bin/fish"),
        ProcessInfo(30, 1, "claude", None),
    ) == (30, "ancestry")


def test_walk_prefers_agent_over_nearer_non_shell() -> None:
    assert _walk(
        ProcessInfo(50, 40, "make", "/usr/bin/make"),
        ProcessInfo(40, 30, "claude", "/opt/claude/bin/claude"),
    ) == (40, "ancestry")


def test_walk_fallback_is_nearest_non_shell() -> None:
    assert _walk(
        ProcessInfo(50, 45, "env", "/usr/bin/env"),
        ProcessInfo(45, 40, "wf.sh", "/usr/bin/bash"),  # #!/bin/bash script: comm = name
        ProcessInfo(40, 30, "python3.11", OWN_PY),  # this hook's own interpreter
        ProcessInfo(30, 20, "cursor-agent", "/opt/cursor/agent"),
        ProcessInfo(20, 1, "systemd", "/usr/lib/systemd/systemd"),
    ) == (30, "ancestry-fallback")


def test_walk_never_falls_back_to_init() -> None:
    """A lease owned by pid 1 would never go stale."""
    ppid = os.getppid()
    assert _walk(
        ProcessInfo(50, 1, "sh", "/bin/sh"),
        ProcessInfo(1, 0, "init", "/sbin/init"),
    ) == (ppid, "ppid-fallback")


def test_walk_accepts_init_when_it_is_the_agent() -> None:
    """In a container Claude Code itself may be pid 1."""
    assert _walk(
        ProcessInfo(50, 1, "sh", "/bin/sh"),
        ProcessInfo(1, 0, "claude", "/usr/local/bin/claude"),
    ) == (1, "ancestry")


def test_walk_stops_on_cycle_and_unreadable() -> None:
    assert _walk(
        ProcessInfo(50, 40, "sh", "/bin/sh"),
        ProcessInfo(40, 50, "bash", "/bin/bash"),
    ) == (os.getppid(), "ppid-fallback")
    assert _walk(ProcessInfo(50, 999, "sh", "/bin/sh")) == (os.getppid(), "ppid-fallback")


def test_walk_depth_is_bounded() -> None:
    chain = [ProcessInfo(i, i + 1, "sh", "/bin/sh") for i in range(10, 10_000)]
    seen: list[int] = []
    table = _table(*chain)

    def read(pid: int) -> ProcessInfo | None:
        seen.append(pid)
        return table(pid)

    find_agent_pid({}, start_pid=10, read=read, is_agent=lambda i: False)
    assert len(seen) <= 64


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (ProcessInfo(1, 0, "claude", "/usr/bin/claude"), True),
        (ProcessInfo(1, 0, "2.1.240", "/x/.local/share/claude/versions/2.1.240"), True),
        (ProcessInfo(1, 0, "2.1.240", "/opt/other/2.1.240"), False),
        (ProcessInfo(1, 0, "node", "/usr/bin/node", ("node", "/x/claude-code/cli.js")), True),
        (
            ProcessInfo(
                1,
                0,
                "node",
                "/usr/bin/node",
                ("node", "--max-old-space-size=4096", "/x/claude/cli.js"),
            ),
            True,
        ),
        (ProcessInfo(1, 0, "node", "/usr/bin/node", ("node", "/srv/app.js")), False),
        (ProcessInfo(1, 0, "MainThread", "/opt/claude-code/bin/claude-native"), True),
        (ProcessInfo(1, 0, "python3", "/root/.claude/plugins/data/x/venv/bin/python3"), False),
        (ProcessInfo(1, 0, "claude-state", "/opt/claude/bin/claude-state"), False),
        (ProcessInfo(1, 0, "bash", "/home/claude/bin/bash"), False),
        (ProcessInfo(1, 0, "vim", "/usr/bin/vim"), False),
        (ProcessInfo(1, 0, "x", None), False),
    ],
)
def test_default_is_agent(info: ProcessInfo, expected: bool) -> None:
    assert default_is_agent(info) is expected


# -- find_agent_pid: real process trees --------------------------------------------------------

CHILD = """
import json, os, sys
from claude_state.domain.procinfo import find_agent_pid
mode = sys.argv[1]
if mode == "marker":
    matcher = lambda i: "agent-marker" in i.cmdline
else:
    matcher = lambda i: False
pid, src = find_agent_pid({}, is_agent=matcher)
print(json.dumps({"pid": pid, "source": src, "ppid": os.getppid()}))
"""

PARENT = """
import subprocess, sys
script = sys.argv[1]
# "; true" stops sh from exec'ing python, so a shell really sits in between.
out = subprocess.run(
    ["sh", "-c", '"$0" -c "$1" marker; true', sys.executable, script],
    capture_output=True, text=True, check=True,
)
sys.stdout.write(out.stdout)
"""


@needs_proc
def test_real_ancestry_past_sh_to_parent_python() -> None:
    """pytest -> python (the "agent", by an injected matcher) -> sh -> python hook."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, "agent-marker"],
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout, _ = parent.communicate(timeout=60)
    assert parent.returncode == 0
    result = json.loads(stdout)
    assert result["ppid"] != parent.pid  # the shell was really in between
    assert result == {"pid": parent.pid, "source": "ancestry", "ppid": result["ppid"]}


@needs_proc
@pytest.mark.skipif(shutil.which("xargs") is None, reason="needs xargs")
def test_real_ancestry_fallback_skips_shell_and_timeout() -> None:
    """pytest -> xargs -> sh -> timeout -> python hook: the fallback is xargs."""
    if shutil.which("timeout") is None:
        pytest.skip("needs timeout")
    proc = subprocess.Popen(
        ["xargs", "-0", "sh", "-c", 'timeout 60 "$0" -c "$1" plain; true', sys.executable, CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout, _ = proc.communicate("", timeout=60)
    assert proc.returncode == 0
    assert json.loads(stdout)["pid"] == proc.pid
    assert json.loads(stdout)["source"] == "ancestry-fallback"


@needs_proc
def test_real_native_build_named_by_version(tmp_path: Path) -> None:
    """A copy of the interpreter at ``.../claude/versions/2.1.240`` plays a native build:
    its comm is the version string, and the default matcher finds it by its exe path."""
    versions = tmp_path / ".local" / "share" / "claude" / "versions"
    versions.mkdir(parents=True)
    fake = versions / "2.1.240"
    shutil.copy2(os.path.realpath(sys.executable), fake)
    env = dict(os.environ)
    env.pop("CLAUDE_PID", None)
    env["PYTHONHOME"] = sys.base_prefix
    libdir = os.path.join(sys.base_prefix, "lib")
    env["LD_LIBRARY_PATH"] = libdir + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    probe = subprocess.run([str(fake), "-c", "pass"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the interpreter can't run from a copy here")
    child = (
        "import json, os\n"
        "from claude_state.domain.procinfo import find_agent_pid\n"
        "print(json.dumps(find_agent_pid({})))\n"
    )
    # The agent copy needs PYTHONHOME; the hook (the venv interpreter) must not inherit it.
    agent = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ)\n"
        "env.pop('PYTHONHOME')\n"
        "cmd = ['sh', '-c', '\"$0\" -c \"$1\"; true', sys.argv[1], sys.argv[2]]\n"
        "out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)\n"
        "sys.stdout.write(out.stdout)\n"
    )
    proc = subprocess.Popen(
        [str(fake), "-c", agent, sys.executable, child],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(stdout) == [proc.pid, "ancestry"]


def test_unreadable_stat_after_kill_is_not_called_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """hidepid or a foreign procfs hides a process kill() can see: alive, not dead."""
    monkeypatch.setitem(procinfo._cache, "have_proc", True)
    monkeypatch.setattr(procinfo, "_read_stat", lambda pid: None)
    assert pid_alive(os.getpid()) is True


def test_exit_between_kill_and_stat_read_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([None, ProcessLookupError(3, "No such process")])

    def kill(pid: int, sig: int) -> None:
        answer = next(answers)
        if answer is not None:
            raise answer

    monkeypatch.setitem(procinfo._cache, "have_proc", True)
    monkeypatch.setattr(procinfo, "_read_stat", lambda pid: None)
    monkeypatch.setattr(os, "kill", kill)
    assert pid_alive(12345) is False
