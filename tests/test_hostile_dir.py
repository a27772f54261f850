"""A hostile state directory cannot be turned against us (``storage/safeio.py``).

A project (and so its ``.claude/state``) can come from anyone. Planted symlinks must
not be written through, FIFOs, sockets and devices must never be waited on (every
command below runs with a timeout: a hang fails the test), and ``verify`` names every
foreign object with its kind and exits 1. All through the real hook and CLI.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hookutil import HOOK, SID, event, hook_env, state_root

from claude_state.domain import ops
from claude_state.domain.definition import parse_definition
from claude_state.domain.store import WorkflowStore
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

TIMEOUT = 20  # generous on a loaded machine; a hang never ends


def _hook(data: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        HOOK, input=data, env=env, capture_output=True, timeout=TIMEOUT, cwd=env["HOME"]
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_state", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=env["HOME"],
    )


def _tool(i: int, name: str = "PostToolUse") -> bytes:
    return event(name, tool_name="Bash", tool_use_id=f"t{i}", tool_input={"command": "ls"})


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project with a recorded session (journal, record, lease) and a workflow."""
    proj = tmp_path / "proj"
    proj.mkdir()
    env = hook_env(proj, CLAUDE_STATE_STRICT="0", HOME=str(tmp_path))
    for data in (event("SessionStart", source="startup"), _tool(1, "PreToolUse"), _tool(1)):
        r = _hook(data, env)
        assert r.returncode == 0, r.stderr
    assert _hook(event("Stop", stop_hook_active=False), env).returncode == 0
    sd = StateDir(state_root(proj))
    store = WorkflowStore(sd)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}]}))
    store.apply("w", ops.op_step("a", "running", at="2026-01-01T00:00:00Z"))
    store.close()
    for rel in ("sessions/" + SID + ".session", "sessions/" + SID + ".lease", "workflows/w.wal"):
        assert (state_root(proj) / rel).is_file(), rel
    return proj, env


def _problems(env: dict[str, str]) -> tuple[int, list[dict[str, str]]]:
    r = _cli(env, "verify")
    return r.returncode, json.loads(r.stdout)["problems"]


FIFO_TARGETS = [
    "hot.conf",
    f"sessions/{SID}.session",
    f"sessions/{SID}.wal",
    f"sessions/{SID}.lease",
    f"sessions/{SID}.lock",
    "workflows/w.state",
    "workflows/w.wal",
    "logs/hook.log",
]


@pytest.mark.parametrize("rel", FIFO_TARGETS)
def test_a_fifo_never_hangs_anything_and_verify_names_it(
    project: tuple[Path, dict[str, str]], rel: str
) -> None:
    proj, env = project
    path = state_root(proj) / rel
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    code, problems = _problems(env)
    assert code == 1
    assert "foreign_fifo" in {p["kind"] for p in problems if p["path"] == str(path)}
    assert stat.S_ISFIFO(os.lstat(path).st_mode)  # a read-only verify moved nothing
    # Every one of these could run forever before (TimeoutExpired fails the test). A
    # writer may replace the FIFO by its own file (an atomic rename): that is fine.
    for args in (("status",), ("sessions", "show", SID), ("workflow", "show", "w")):
        r = _cli(env, *args)
        assert r.returncode in (0, 1), (args, r.stderr)
    assert _hook(_tool(2, "PreToolUse"), env).returncode == 0
    assert _hook(event("UserPromptSubmit", prompt="hi"), env).returncode == 0


def test_control_a_plain_open_of_a_fifo_hangs(tmp_path: Path) -> None:
    """What the hook did with a FIFO named hot.conf: a plain open waits for a writer."""
    fifo = tmp_path / "hot.conf"
    os.mkfifo(fifo)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", f"open({str(fifo)!r}, 'rb').read()"], timeout=2)


def test_a_socket_and_a_device_are_named(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    root = state_root(proj)
    sock_path = root / "sessions" / f"{SID}.session"
    sock_path.unlink()
    srv = socket.socket(socket.AF_UNIX)
    import tempfile

    short = tempfile.mkdtemp(dir="/tmp")  # AF_UNIX paths are short; bind, then move
    try:
        srv.bind(os.path.join(short, "s"))
        os.rename(os.path.join(short, "s"), sock_path)
        kinds = {str(sock_path): "foreign_socket"}
        dev = root / "workflows" / "w.state"
        dev.unlink()
        try:
            os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null
            kinds[str(dev)] = "foreign_device"
        except PermissionError:  # no CAP_MKNOD here: the socket case still runs
            dev.write_bytes(b"")  # (a regular, damaged snapshot instead)
        assert _hook(_tool(2, "PreToolUse"), env).returncode == 0
        assert _cli(env, "status").returncode in (0, 1)
        code, problems = _problems(env)
        assert code == 1
        for path, kind in kinds.items():
            assert kind in {p["kind"] for p in problems if p["path"] == path}, problems
    finally:
        srv.close()
        os.rmdir(short)


def test_symlinked_subfolders_are_refused_not_written_through(
    project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    proj, env = project
    root = state_root(proj)
    outside = tmp_path / "outside"
    outside.mkdir()
    for sub in ("sessions", "logs", "temp"):
        os.rename(root / sub, tmp_path / f"moved-{sub}")
        os.symlink(outside, root / sub)
    r = _hook(_tool(2, "PreToolUse"), env)
    assert r.returncode == 0  # refused and reported, the agent goes on
    r = _hook(event("UserPromptSubmit", prompt="hi"), env)
    assert r.returncode == 0
    assert list(outside.iterdir()) == []  # nothing written where the links point
    assert b"refusing symlink" in r.stderr  # logged where it can be: stderr
    r = _cli(env, "status")
    assert r.returncode == 1 and "refusing symlink" in r.stderr
    code, problems = _problems(env)
    assert code == 1
    named = {p["path"]: p["kind"] for p in problems}
    for sub in ("sessions", "logs", "temp"):
        assert named[str(root / sub)] == "foreign_symlink"


def test_a_symlinked_hook_log_and_lock_are_not_followed(
    project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    proj, env = project
    root = state_root(proj)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = root / "logs" / "hook.log"
    log.unlink(missing_ok=True)
    os.symlink(victim, log)
    lock = root / "sessions" / f"{SID}.lock"
    lock.unlink()
    created = tmp_path / "created-by-lock"
    os.symlink(created, lock)
    assert _hook(b"{not json", env).returncode == 0  # logs a line
    assert _hook(_tool(2, "PreToolUse"), env).returncode == 0  # takes the lock
    assert victim.read_text() == "precious\n"
    assert not created.exists()
    code, problems = _problems(env)
    assert code == 1
    named = {p["path"]: p["kind"] for p in problems}
    assert named[str(log)] == "foreign_symlink" and named[str(lock)] == "foreign_symlink"
    # Control: a plain O_CREAT open, as the lock used to do, creates the outside file.
    os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o600))
    assert created.exists()


def test_sessions_as_a_regular_file_is_named(project: tuple[Path, dict[str, str]]) -> None:
    """Every hook event is then dropped; verify used to say ok."""
    proj, env = project
    root = state_root(proj)
    os.rename(root / "sessions", root.parent / "moved")
    (root / "sessions").write_bytes(b"")
    assert _hook(_tool(2, "PreToolUse"), env).returncode == 0
    code, problems = _problems(env)
    assert code == 1
    assert {p["path"]: p["kind"] for p in problems}[str(root / "sessions")] == "wrong_type"
    r = _cli(env, "verify", "--repair")  # moved aside; the layout can be made again
    assert r.returncode == 0, r.stdout
    assert _hook(_tool(3, "PreToolUse"), env).returncode == 0
    assert (root / "sessions" / f"{SID}.wal").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_file_of_another_user_is_named(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    path = state_root(proj) / "workflows" / "w.state"
    os.chown(path, 65534, 65534)
    code, problems = _problems(env)
    assert code == 1
    assert {p["path"]: p["kind"] for p in problems}[str(path)] == "wrong_owner"


def test_a_0755_state_dir_is_tightened(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    root = proj / ".claude" / "state"
    (root / "sessions").mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(root / "sessions", 0o755)
    os.chmod(proj / ".claude", 0o755)
    env = hook_env(proj, HOME=str(tmp_path))
    assert _hook(event("SessionStart", source="startup"), env).returncode == 0
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "sessions").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(proj / ".claude").st_mode) == 0o755  # the project's own


@pytest.mark.parametrize("name", ["PreToolUse", "SessionStart"])
def test_the_hook_never_creates_a_missing_project(tmp_path: Path, name: str) -> None:
    env = hook_env(tmp_path, CLAUDE_STATE_STRICT="0", HOME=str(tmp_path))
    env["CLAUDE_PROJECT_DIR"] = str(tmp_path / "gone")
    data = _tool(1, name) if name == "PreToolUse" else event(name, source="startup")
    r = _hook(data, env)
    assert r.returncode == 0
    assert not (tmp_path / "gone").exists()
    assert b"does not exist" in r.stderr  # logged where it can be


def test_read_only_commands_do_not_write_the_hook_log(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    sd = StateDir(state_root(proj))
    journal.append(sd, SID, [b"this is not JSON"])  # a record every reader skips
    log = state_root(proj) / "logs" / "hook.log"
    before = log.read_bytes() if log.exists() else b""
    for args in (("status",), ("sessions", "show", SID), ("sessions", "list"), ("verify",)):
        _cli(env, *args)
    assert (log.read_bytes() if log.exists() else b"") == before
    # Control: a writing command does log the skipped record.
    from claude_state.domain.sessions import SessionStore

    SessionStore(sd).catch_up(SID)
    assert b"not a JSON hook event" in log.read_bytes()


def test_the_state_dir_itself_may_be_a_symlink(tmp_path: Path) -> None:
    """Documented choice: the state folder is named by the user's settings and is
    followed; only the folders and files inside it must be ours."""
    proj = tmp_path / "proj"
    (proj / ".claude").mkdir(parents=True)
    real = tmp_path / "elsewhere"
    real.mkdir()
    os.symlink(real, proj / ".claude" / "state")
    env = hook_env(proj, HOME=str(tmp_path))
    assert _hook(_tool(1, "PreToolUse"), env).returncode == 0
    assert (real / "sessions" / f"{SID}.wal").is_file()
    assert _cli(env, "status").returncode == 0


def test_a_fifo_as_the_project_config_never_hangs_the_hook(tmp_path: Path) -> None:
    from claude_state.plugins.config import CONFIG_NAME

    proj = tmp_path / "proj"
    (proj / ".claude").mkdir(parents=True)
    os.mkfifo(proj / ".claude" / CONFIG_NAME)
    env = hook_env(proj, CLAUDE_STATE_STRICT="0", HOME=str(tmp_path))
    r = _hook(event("SessionStart", source="startup"), env)  # a cold event reads the config
    assert r.returncode == 0
    log = (state_root(proj) / "logs" / "hook.log").read_text()
    assert "refusing fifo" in log
