"""An install that travels (issue 16, item 5).

The committed project settings hold one command, the same on every machine; it is run
here for real through ``sh -c`` (as Claude Code runs it) in a fresh project: with the
project's own ``.venv``, with ``claude-state`` only on PATH, with a ``.venv`` that lacks
claude-state, and with nothing at all. Machine-specific paths go to the local settings.
``init`` and the first hook write ``.claude/state/.gitignore``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from claude_state.adapters.claude_code import install as lib
from claude_state.storage.gitignore import write_gitignore

REPO = Path(__file__).resolve().parent.parent
SID = "bbbbbbbb-2222-4000-8000-00000000000b"


def _exec_script(path: Path, target: str) -> Path:
    """An executable that runs *target* with the same arguments (a stand-in venv python:
    a symlink would make Python find the real venv by resolving it, or not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = f"PYTHONPATH={REPO} " if target == sys.executable else ""
    path.write_text(f'#!/bin/sh\n{env}exec "{target}" "$@"\n')
    path.chmod(0o755)
    return path


def _base_python_without_claude_state() -> str:
    base = getattr(sys, "_base_executable", "") or ""
    check = subprocess.run([base, "-I", "-c", "import claude_state"], capture_output=True)
    if not base or check.returncode == 0:
        pytest.skip("no interpreter without claude_state available")
    return base


def _event(name: str) -> bytes:
    doc = {"session_id": SID, "cwd": "/tmp", "hook_event_name": name, "source": "startup"}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _run_portable(
    project: Path, path_dirs: list[Path], name: str
) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.pathsep.join(str(p) for p in path_dirs) or str(project / "none"),
        "CLAUDE_PROJECT_DIR": str(project),
        "TMPDIR": str(project / "tmp"),
        "HOME": str(project),
    }
    (project / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        ["/bin/sh", "-c", lib.PORTABLE_COMMAND],
        input=_event(name),
        capture_output=True,
        env=env,
        cwd=project,
        timeout=60,
    )


@pytest.fixture
def no_claude_state_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# -- the committed command, run for real ----------------------------------------------------


def test_portable_command_names_no_path_of_this_machine() -> None:
    cmd = lib.PORTABLE_COMMAND
    assert '"$CLAUDE_PROJECT_DIR"/.venv/bin/python' in cmd
    for local in (sys.executable, str(REPO), os.path.expanduser("~"), "/usr/", "/opt/"):
        assert local not in cmd
    assert lib.HOT_MODULE in cmd and lib.is_ours({"type": "command", "command": cmd})


def test_portable_command_runs_the_project_venv_and_records(tmp_path: Path) -> None:
    _exec_script(tmp_path / ".venv" / "bin" / "python", sys.executable)
    r = _run_portable(tmp_path, [], "UserPromptSubmit")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    assert (tmp_path / ".claude" / "state" / "sessions" / f"{SID}.wal").exists()


def test_portable_command_falls_back_to_claude_state_on_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    script = bindir / "claude-state"
    bindir.mkdir()
    script.write_text(
        f'#!/bin/sh\nPYTHONPATH={REPO} exec "{sys.executable}" -m claude_state "$@"\n'
    )
    script.chmod(0o755)
    r = _run_portable(tmp_path, [bindir], "UserPromptSubmit")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    assert (tmp_path / ".claude" / "state" / "sessions" / f"{SID}.wal").exists()


def test_portable_command_with_nothing_found_tells_the_user_once(tmp_path: Path) -> None:
    r = _run_portable(tmp_path, [], "SessionStart")
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"systemMessage": lib.NO_PYTHON_MESSAGE}
    r = _run_portable(tmp_path, [], "PreToolUse")
    assert (r.returncode, r.stdout) == (0, b"")  # not on every event
    assert not (tmp_path / ".claude" / "state").exists()


def test_portable_command_with_a_venv_lacking_claude_state_tells_the_user(
    tmp_path: Path,
) -> None:
    base = _base_python_without_claude_state()
    _exec_script(tmp_path / ".venv" / "bin" / "python", base)
    r = _run_portable(tmp_path, [], "SessionStart")
    assert r.returncode == 0
    assert "cannot import claude_state" in json.loads(r.stdout)["systemMessage"]
    r = _run_portable(tmp_path, [], "PreToolUse")
    assert (r.returncode, r.stdout) == (0, b"")


# -- which file install writes, and why -----------------------------------------------------


def test_project_install_with_the_project_venv_commits_the_portable_command(
    tmp_path: Path, no_claude_state_on_path: None
) -> None:
    _exec_script(tmp_path / ".venv" / "bin" / "python", sys.executable)
    result = lib.install("project", tmp_path)
    assert result.scope == "project" and result.command == lib.PORTABLE_COMMAND
    assert ".venv" in result.reason
    raw = (tmp_path / ".claude" / "settings.json").read_text()
    assert sys.executable not in raw and str(tmp_path) not in raw
    assert not (tmp_path / ".claude" / "settings.local.json").exists()


def test_project_install_without_a_portable_way_goes_to_local_settings(
    tmp_path: Path, no_claude_state_on_path: None
) -> None:
    """The control: here only an absolute path would work, and it never reaches the
    committed file."""
    result = lib.install("project", tmp_path)
    assert result.scope == "local"
    assert result.path == tmp_path / ".claude" / "settings.local.json"
    assert "exists only on this machine" in result.reason
    assert not (tmp_path / ".claude" / "settings.json").exists()
    local = json.loads(result.path.read_bytes())
    [h] = local["hooks"]["PreToolUse"][0]["hooks"]
    assert h["command"] == lib.hook_command() and os.path.abspath(sys.executable) in h["command"]


def test_project_install_removes_our_older_local_entries(
    tmp_path: Path, no_claude_state_on_path: None
) -> None:
    lib.install("project", tmp_path)  # -> local (no portable way yet)
    local = tmp_path / ".claude" / "settings.local.json"
    data = json.loads(local.read_bytes())
    data["model"] = "opus"
    local.write_text(json.dumps(data))
    _exec_script(tmp_path / ".venv" / "bin" / "python", sys.executable)
    result = lib.install("project", tmp_path)
    assert result.scope == "project" and result.removed_from == local
    assert json.loads(local.read_bytes()) == {"model": "opus"}  # only ours removed


def test_cli_install_says_which_file_and_why(tmp_path: Path, no_claude_state_on_path: None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PYTHONPATH"] = str(REPO)
    base = [sys.executable, "-m", "claude_state", "--project", str(tmp_path)]
    out = subprocess.run([*base, "--json", "install"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["scope"] == "local" and doc["requested_scope"] == "project"
    assert doc["path"].endswith("settings.local.json") and doc["reason"]
    out = subprocess.run([*base, "install"], capture_output=True, text=True, env=env)
    assert "Why this file and command:" in out.stdout and "settings.local.json" in out.stdout


# -- .claude/state/.gitignore ---------------------------------------------------------------


def test_init_writes_the_state_gitignore(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-m", "claude_state", "--project", str(tmp_path), "--json", "init"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    path = tmp_path / ".claude" / "state" / ".gitignore"
    assert json.loads(out.stdout)["gitignore"] == str(path)
    assert path.read_bytes() == b"*\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_first_hook_writes_the_state_gitignore(tmp_path: Path) -> None:
    _exec_script(tmp_path / ".venv" / "bin" / "python", sys.executable)
    r = _run_portable(tmp_path, [], "PreToolUse")  # a hot event first
    assert r.returncode == 0
    assert (tmp_path / ".claude" / "state" / ".gitignore").read_bytes() == b"*\n"


def test_gitignore_is_never_written_through_a_symlink_nor_over_a_users_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "elsewhere"
    root = tmp_path / "state"
    root.mkdir()
    (root / ".gitignore").symlink_to(target)
    assert write_gitignore(str(root)) is False
    assert not target.exists()
    (root / ".gitignore").unlink()
    (root / ".gitignore").write_text("mine\n")
    assert write_gitignore(str(root)) is False
    assert (root / ".gitignore").read_text() == "mine\n"
    (root / ".gitignore").unlink()
    assert write_gitignore(str(root)) is True


def test_project_uninstall_also_removes_what_a_project_install_put_in_local(
    tmp_path: Path, no_claude_state_on_path: None
) -> None:
    assert lib.install("project", tmp_path).scope == "local"
    result = lib.uninstall("project", tmp_path)
    local = tmp_path / ".claude" / "settings.local.json"
    assert result.removed_from == local
    assert json.loads(local.read_bytes()) == {}


def test_a_project_venv_without_claude_state_is_never_committed_to(tmp_path: Path) -> None:
    """Whatever PATH holds, the committed command would pick the project's .venv first,
    and it lacks claude-state: the hooks go to the local settings, and the reason says
    how to fix it."""
    base = _base_python_without_claude_state()
    _exec_script(tmp_path / ".venv" / "bin" / "python", base)
    result = lib.install("project", tmp_path)
    assert result.scope == "local" and "does not have claude-state" in result.reason
    assert not (tmp_path / ".claude" / "settings.json").exists()
