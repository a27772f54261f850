"""End to end through the real CLI: status, sessions, recover after an agent is killed -9."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from _session_helpers import REPO, SID, child_env, kill9, start_agent

from claude_state.cli.main import COMMANDS
from claude_state.storage.layout import StateDir

WID = "retry-work"

#: While some other command modules are still being written, the real ``main`` runs with
#: the command list restricted to the modules that exist (same parser, same dispatch).
HARNESS = """
import sys, importlib.util
from claude_state.cli import main as m
m.COMMANDS = tuple(c for c in m.COMMANDS
                   if importlib.util.find_spec(f"claude_state.cli.cmd_{c}") is not None)
sys.exit(m.main(sys.argv[1:]))
"""
ALL_COMMANDS = all(importlib.util.find_spec(f"claude_state.cli.cmd_{c}") for c in COMMANDS)


def cli(state: StateDir | str, *args: str, cwd: str | None = None) -> tuple[int, str, str]:
    root = state.root if isinstance(state, StateDir) else state
    prog = ["-m", "claude_state"] if ALL_COMMANDS else ["-c", HARNESS]
    p = subprocess.run(
        [sys.executable, *prog, "--state-dir", root, *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=cwd or REPO,
        timeout=60,
    )
    return p.returncode, p.stdout, p.stderr


def cli_json(state: StateDir | str, *args: str, code: int = 0) -> Any:
    rc, out, err = cli(state, "--json", *args)
    assert rc == code, err
    return json.loads(out)  # exactly one document


@pytest.fixture
def state(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "state")).ensure()


def test_kill_agent_then_status_and_recover(state: StateDir) -> None:
    kill9(start_agent(state, SID, WID))

    st = cli_json(state, "status")
    assert st["sessions"] == {"active": 0, "crashed": 1, "ended": 0, "recovered": 0}
    [w] = st["workflows"]
    assert (w["id"], w["status"], w["progress"]) == (WID, "running", 33.3)
    rc, human, _ = cli(state, "status")
    assert rc == 0 and SID in human and "claude-state recover" in human
    assert "step in flight: build" in human and "pytest -x" in human

    rows = cli_json(state, "sessions", "list")
    assert [
        set(r) >= {"id", "status", "pid", "host", "started_at", "last_activity", "workflows"}
        for r in rows
    ] == [True]
    assert rows[0]["status"] == "crashed" and rows[0]["workflows"] == [WID]
    assert cli_json(state, "sessions", "list", "--active") == []
    assert len(cli_json(state, "sessions", "list", "--crashed")) == 1
    show = cli_json(state, "sessions", "show", SID)
    assert show["events"] == 5 and show["tool_calls"] == 1 and show["status"] == "crashed"

    dry = cli_json(state, "recover", "--dry-run")
    [p] = dry["plans"]
    assert p["applied"] is False and p["strategy"] == "resume_from_wal"
    assert p["recoverable_workflows"][0]["step_in_flight"] == "build"
    assert set(p) >= {
        "session_id",
        "strategy",
        "estimated_data_loss",
        "recoverable_workflows",
        "applied",
    }
    assert cli_json(state, "status")["sessions"]["crashed"] == 1  # dry run changed nothing

    [done] = cli_json(state, "recover")["plans"]
    assert done["applied"] is True and done["changes"]
    st = cli_json(state, "status")
    assert st["sessions"]["recovered"] == 1 and st["sessions"]["crashed"] == 0
    assert st["workflows"][0]["current_step"] == "build"

    [again] = cli_json(state, "recover", SID)["plans"]
    assert again["applied"] is True and again["changes"] == []
    assert cli_json(state, "recover")["plans"] == []
    rc, human, _ = cli(state, "recover")
    assert rc == 0 and "nothing to recover" in human


def test_live_agent_is_active_and_not_recovered(state: StateDir) -> None:
    agent = start_agent(state, SID, WID)
    try:
        assert cli_json(state, "status")["sessions"]["active"] == 1
        assert cli_json(state, "recover")["plans"] == []
        rc, _out, err = cli(state, "recover", SID)
        assert rc == 4 and err.startswith("claude-state: error:")
    finally:
        kill9(agent)


def test_errors_and_exit_codes(state: StateDir) -> None:
    rc, out, err = cli(state, "recover", "nope")
    assert rc == 3 and out == "" and err.startswith("claude-state: error:")
    assert cli(state, "recover", "../etc")[0] == 2
    assert cli(state, "sessions", "show", "nope")[0] == 3
    assert cli(state, "sessions", "show", "a/b")[0] == 2
    assert cli(state, "sessions", "export", "nope")[0] == 3
    assert cli(state, "sessions")[0] == 2
    assert cli_json(state, "sessions", "list") == []
    assert cli_json(state, "status")["sessions"]["active"] == 0


def test_export_import_via_cli(state: StateDir, tmp_path: Any) -> None:
    kill9(start_agent(state, SID, WID))
    out = str(tmp_path / "s.bundle")
    res = cli_json(state, "sessions", "export", SID, "-o", out)
    assert res["bytes"] == os.path.getsize(out)
    # default file name in the working directory
    rc, _o, err = cli(state, "sessions", "export", SID, cwd=str(tmp_path))
    assert rc == 0, err
    assert os.path.exists(tmp_path / f"{SID}.claude-state-bundle")

    other = StateDir(str(tmp_path / "other")).ensure()
    with open(out, "rb") as f:
        data = f.read()
    bad = str(tmp_path / "bad.bundle")
    for damaged in (
        data[: len(data) // 2],
        data[:-1],
        data[:100] + bytes([data[100] ^ 4]) + data[101:],
    ):
        with open(bad, "wb") as f:
            f.write(damaged)
        rc, _o, err = cli(other, "sessions", "import", bad)
        assert rc == 1 and "bundle" in err
        assert os.listdir(other.sessions) == [] and os.listdir(other.workflows) == []
    assert cli(other, "sessions", "import", str(tmp_path / "missing"))[0] == 3

    imp = cli_json(other, "sessions", "import", out)
    assert imp["imported"] is True and imp["workflows"] == [WID]
    assert cli_json(other, "sessions", "import", out)["imported"] is False
    show = cli_json(other, "sessions", "show", SID)
    assert show["events"] == 5
    # the imported lease names a process of this host that is gone: still crashed
    assert show["status"] == "crashed"
