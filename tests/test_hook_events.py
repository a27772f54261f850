"""Hook events replayed through the real hook command (one process per event)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hookutil import SID, check_stdout, event, fixtures, hook_env, run_hook, state_root

from claude_state.domain.definition import parse_definition
from claude_state.domain.ops import op_pause, op_resume, op_step
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.plugins.dispatch import read_cursor
from claude_state.storage import journal
from claude_state.storage.layout import StateDir


def _log(tmp: Path) -> str:
    p = state_root(tmp) / "logs" / "hook.log"
    return p.read_text() if p.exists() else ""


def test_fixture_session_replayed(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    for name, data in fixtures():
        r = run_hook(data, env)
        assert r.returncode == 0, (name, r.stderr)
        check_stdout(r.stdout, json.loads(data)["hook_event_name"])
    state = StateDir(state_root(tmp_path))
    rec = SessionStore(state).peek(SID)
    assert rec.events == 13
    assert rec.tool_calls == 3
    assert rec.status == "ended" and rec.end_reason == "prompt_input_exit"
    assert rec.last_prompt.startswith("Add retry logic")
    assert rec.compactions == 1
    assert [c["tool_use_id"] for c in rec.last_tool_calls] == [
        "toolu_01Read0001",
        "toolu_01Edit0002",
        "toolu_01Bash0003",
    ]
    assert _log(tmp_path) == ""
    # every event reached the plugins, once
    assert read_cursor(StateDir(state_root(tmp_path)), SID) == 13


def _records(tmp: Path, sid: str = SID) -> list[dict]:
    return [json.loads(p) for _s, p in journal.read(StateDir(state_root(tmp)), sid)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"garbage",
        b"[1,2,3]",
        b'{"hook_event_name":"PreToolUse"}',
        event("PreToolUse", sid="../etc"),
        fixtures()[3][1][:150],
    ],
    ids=["empty", "blank", "garbage", "array", "no-session", "bad-sid", "truncated"],
)
def test_malformed_input_exit_0_logged(tmp_path: Path, data: bytes) -> None:
    env = hook_env(tmp_path)
    r = run_hook(data, env)
    assert r.returncode == 0 and r.stdout == b""
    assert "ignored" in _log(tmp_path)
    assert not (state_root(tmp_path) / "sessions").exists() or not list(
        (state_root(tmp_path) / "sessions").glob("*.wal")
    )


def test_non_utf8_recorded_with_replacement(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    data = event(
        "PostToolUse", tool_name="Bash", tool_use_id="t1", tool_response={"stdout": "XX"}
    ).replace(b"XX", b"\xff\xfe ok")
    r = run_hook(data, env)
    assert r.returncode == 0 and r.stdout == b""
    (rec,) = _records(tmp_path)
    assert rec["ev"]["tool_response"]["stdout"] == "\ufffd\ufffd ok"
    assert "not valid UTF-8" in _log(tmp_path)


def test_ten_megabyte_output_goes_to_blobs(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    big = "line of test output\n" * (10 * 1024 * 1024 // 20)
    data = event(
        "PostToolUse",
        tool_name="Bash",
        tool_use_id="big1",
        tool_input={"command": "make test"},
        tool_response={"stdout": big},
    )
    assert len(data) > 10 * 1024 * 1024
    r = run_hook(data, env)
    assert r.returncode == 0 and r.stdout == b""
    (rec,) = _records(tmp_path)
    ref = rec["ev"]["tool_response"]
    assert "$blob" in ref and rec["ev"]["tool_input"] == {"command": "make test"}
    from claude_state.storage.blobs import BlobStore

    assert BlobStore(StateDir(state_root(tmp_path))).resolve(ref) == {"stdout": big}
    wal = state_root(tmp_path) / "sessions" / f"{SID}.wal"
    assert wal.stat().st_size < 4096
    assert SessionStore(StateDir(state_root(tmp_path))).peek(SID).tool_calls == 1


def test_unknown_event_recorded_on_hot_path(tmp_path: Path) -> None:
    r = run_hook(event("PostToolBatch", tool_calls=[]), hook_env(tmp_path))
    assert r.returncode == 0 and r.stdout == b""
    assert _records(tmp_path)[0]["ev"]["hook_event_name"] == "PostToolBatch"


def test_session_end_within_budget(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    run_hook(event("SessionStart", source="startup"), env)
    for i in range(20):
        run_hook(
            event(
                "PreToolUse",
                tool_name="Read",
                tool_use_id=f"t{i}",
                tool_input={"file_path": f"/x/{i}"},
            ),
            env,
        )
        run_hook(
            event(
                "PostToolUse",
                tool_name="Read",
                tool_use_id=f"t{i}",
                tool_input={"file_path": f"/x/{i}"},
                tool_response={"ok": True},
            ),
            env,
        )
    t0 = time.perf_counter()
    r = run_hook(event("SessionEnd", reason="prompt_input_exit"), env)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0
    assert elapsed < 1.5, f"SessionEnd took {elapsed:.3f} s"
    rec = SessionStore(StateDir(state_root(tmp_path))).load(SID)
    assert rec.status == "ended" and rec.tool_calls == 20


def _workflow(tmp: Path, *, running: bool = True) -> WorkflowStore:
    state = StateDir(state_root(tmp))
    store = WorkflowStore(state)
    wf = parse_definition(
        {
            "id": "wf1",
            "name": "Release",
            "steps": [{"id": "build", "name": "Build it"}, {"id": "test", "deps": ["build"]}],
        }
    )
    store.create(wf)
    if running:
        store.apply("wf1", op_step("build", "running", at="2026-01-01T00:00:00.000Z"))
    SessionStore(state).note_workflow(SID, "wf1", "build" if running else None)
    return store


def _config(tmp: Path, doc: dict) -> None:
    (tmp / ".claude" / "claude-state.json").write_text(json.dumps(doc))


def test_keep_working_blocks_stop_with_next_step(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    _config(tmp_path, {"policies": {"keep_working": True}})
    run_hook(event("SessionStart", source="startup"), env)
    _workflow(tmp_path)
    r = run_hook(event("Stop", stop_hook_active=False, last_assistant_message="done?"), env)
    assert r.returncode == 0
    doc = check_stdout(r.stdout, "Stop")
    assert doc is not None and doc["decision"] == "block"
    assert "Step build" in doc["reason"] and "wf1" in doc["reason"]
    again = run_hook(event("Stop", stop_hook_active=True), env)
    assert again.returncode == 0 and again.stdout == b""


def test_keep_working_off_by_default(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    run_hook(event("SessionStart", source="startup"), env)
    _workflow(tmp_path)
    r = run_hook(event("Stop", stop_hook_active=False), env)
    assert r.returncode == 0 and r.stdout == b""


def test_paused_workflow_refuses_tool_calls(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    _config(tmp_path, {"policies": {"block_tools_when_paused": True}})
    run_hook(event("SessionStart", source="startup"), env)
    store = _workflow(tmp_path)
    store.apply("wf1", op_pause(at="2026-01-01T00:00:01.000Z"))
    run_hook(event("UserPromptSubmit", prompt="go on"), env)  # refreshes the gate
    pre = event("PreToolUse", tool_name="Edit", tool_use_id="e1", tool_input={"file_path": "/a"})
    r = run_hook(pre, env)
    doc = check_stdout(r.stdout, "PreToolUse")
    assert r.returncode == 0 and doc is not None
    assert doc["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "wf1" in doc["hookSpecificOutput"]["permissionDecisionReason"]
    resume_cmd = event(
        "PreToolUse",
        tool_name="Bash",
        tool_use_id="b1",
        tool_input={"command": "claude-state workflow resume wf1"},
    )
    assert run_hook(resume_cmd, env).stdout == b""
    store.apply("wf1", op_resume(at="2026-01-01T00:00:02.000Z"))
    run_hook(event("UserPromptSubmit", prompt="resumed"), env)
    assert run_hook(pre, env).stdout == b""
    # both refused and allowed calls were recorded
    assert SessionStore(StateDir(state_root(tmp_path))).peek(SID).events == 6


def test_tool_calls_attached_to_running_step(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    run_hook(event("SessionStart", source="startup"), env)
    store = _workflow(tmp_path)
    time.sleep(0.01)
    run_hook(
        event(
            "PreToolUse", tool_name="Bash", tool_use_id="b1", tool_input={"command": "make build"}
        ),
        env,
    )
    run_hook(
        event(
            "PostToolUse",
            tool_name="Bash",
            tool_use_id="b1",
            tool_input={"command": "make build"},
            tool_response={"stdout": "ok"},
        ),
        env,
    )
    run_hook(event("Stop", stop_hook_active=False), env)  # drains to the plugins
    calls = store.load("wf1").step("build").tool_calls
    assert [c["tool_use_id"] for c in calls] == ["b1"]
    assert calls[0]["summary"] == "make build"


def test_session_start_resume_reinjects_unfinished_workflow(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    run_hook(event("SessionStart", source="startup"), env)
    _workflow(tmp_path)
    r = run_hook(event("SessionStart", source="compact"), env)
    doc = check_stdout(r.stdout, "SessionStart")
    assert doc is not None
    text = doc["hookSpecificOutput"]["additionalContext"]
    assert "wf1" in text and "build" in text


def test_cli_hook_command_delegates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    import argparse
    import io
    import sys

    from claude_state.cli import cmd_hook
    from claude_state.cli.common import Context

    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir")
    parser.add_argument("--project")
    parser.add_argument("--json", action="store_true")
    cmd_hook.register(parser.add_subparsers())
    args = parser.parse_args(["--state-dir", str(tmp_path / "st"), "hook", "PostToolUse"])
    data = event("PostToolUse", tool_name="Read", tool_use_id="r1")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert cmd_hook.run(args, Context(args)) == 0
    assert capsysbinary.readouterr().out == b""
    assert len(journal.read(StateDir(tmp_path / "st"), SID)) == 1


def test_cold_events_heartbeat_the_lease_of_their_own_agent(tmp_path: Path) -> None:
    """UserPromptSubmit/Stop refresh the lease (what keeps a session alive for another
    host sharing the state dir); a lease now held by another process is left alone."""
    import subprocess
    import sys

    from claude_state.domain import leases

    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        env = hook_env(tmp_path, CLAUDE_PID=str(agent.pid))
        state = StateDir(state_root(tmp_path))
        assert run_hook(event("SessionStart", source="startup"), env).returncode == 0
        first = leases.read(state, SID)
        assert first is not None and first.info.owner.pid == agent.pid
        time.sleep(0.05)
        assert run_hook(event("UserPromptSubmit", prompt="go on"), env).returncode == 0
        second = leases.read(state, SID)
        assert second is not None and second.epoch == first.epoch
        assert second.info.heartbeat_at > first.info.heartbeat_at
        # Another agent process (as if the lease had been re-acquired elsewhere): the
        # first agent's events must not touch it.
        other = hook_env(tmp_path, CLAUDE_PID=str(os.getpid()))
        assert run_hook(event("Stop", stop_hook_active=False), other).returncode == 0
        third = leases.read(state, SID)
        assert third is not None and third.info.heartbeat_at == second.info.heartbeat_at
    finally:
        agent.kill()
        agent.wait()
