"""A stand-in agent killed with -9: the next SessionStart names what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hookutil import check_stdout, event, hook_env, run_hook, state_root

from claude_state.domain.sessions import SessionStore
from claude_state.storage.layout import StateDir

AGENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from hookutil import HOOK, event
    from claude_state.clock import now_iso
    from claude_state.domain.definition import parse_definition
    from claude_state.domain.ops import op_step
    from claude_state.domain.sessions import SessionStore
    from claude_state.domain.store import WorkflowStore
    from claude_state.storage.layout import StateDir

    sid = sys.argv[2]
    env = dict(os.environ, CLAUDE_PID=str(os.getpid()))

    def hook(data):
        r = subprocess.run(HOOK, input=data, env=env, capture_output=True)
        assert r.returncode == 0, r.stderr

    hook(event("SessionStart", sid, source="startup"))
    hook(event("UserPromptSubmit", sid, prompt="ship release 42"))
    state = StateDir(os.environ["CLAUDE_PROJECT_DIR"] + "/.claude/state")
    store = WorkflowStore(state)
    store.create(parse_definition({"id": "release-42", "name": "Release 42", "steps": [
        {"id": "plan"}, {"id": "build", "deps": ["plan"]}, {"id": "test", "deps": ["build"]}]}))
    store.apply("release-42", op_step("plan", "running", at=now_iso()))
    store.apply("release-42", op_step("plan", "completed", at=now_iso()))
    store.apply("release-42", op_step("build", "running", at=now_iso()))
    SessionStore(state).note_workflow(sid, "release-42", "build")
    hook(event("PreToolUse", sid, tool_name="Bash", tool_use_id="toolu_b1",
               tool_input={"command": "make dist"}))
    hook(event("PostToolUse", sid, tool_name="Bash", tool_use_id="toolu_b1",
               tool_input={"command": "make dist"}, tool_response={"stdout": "ok"}))
    hook(event("PreToolUse", sid, tool_name="Bash", tool_use_id="toolu_b2",
               tool_input={"command": "make upload"}))
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_killed_agent_is_named_by_next_session_start(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    crashed_sid = "aaaaaaaa-0000-4000-8000-000000000001"
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(Path(__file__).parent), crashed_sid],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "ready", (
            agent.stderr.read() if agent.stderr else ""
        )
        lease_pid = SessionStore(StateDir(state_root(tmp_path))).summary(crashed_sid)["pid"]
        assert lease_pid == agent.pid  # the lease names the agent, not the hook process
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
        for f in (agent.stdout, agent.stderr):
            if f:
                f.close()

    # The next session, in a new stand-in agent (this test process).
    env2 = dict(env, CLAUDE_PID=str(os.getpid()))
    r = run_hook(
        event("SessionStart", "bbbbbbbb-0000-4000-8000-000000000002", source="startup"), env2
    )
    assert r.returncode == 0, r.stderr
    doc = check_stdout(r.stdout, "SessionStart")
    assert doc is not None
    text = doc["hookSpecificOutput"]["additionalContext"]
    assert len(text) <= 10_000
    assert crashed_sid in text
    assert "release-42" in text
    assert "step in flight: build" in text
    assert "ship release 42" in text  # last prompt
    assert "make upload" in text  # the call in flight
    assert f"claude-state recover {crashed_sid}" in text
    state = StateDir(state_root(tmp_path))
    assert SessionStore(state).status(crashed_sid) == "crashed"
    # named again on the next start until recovered
    r2 = run_hook(
        event("SessionStart", "cccccccc-0000-4000-8000-000000000003", source="startup"), env2
    )
    assert crashed_sid in r2.stdout.decode()
