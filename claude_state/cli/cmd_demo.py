"""``claude-state demo``: a crash and its recovery, end to end, through the real commands.

The demonstration builds a throw-away project, starts a stand-in for the agent process,
feeds Claude Code hook events (the shapes of ``shared/fixtures/claude-code``) to the real
hook command, drives a workflow through the real CLI, kills the "agent" with SIGKILL in
the middle of a step and a tool call, and then shows what the next session is told, what
``status`` and ``recover`` say, and that the interrupted step is ready to retry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from claude_state.cli.common import Context

HOT = "from claude_state.adapters.claude_code.hot import main; main()"

WORKFLOW: dict[str, Any] = {
    "id": "payments-retry",
    "name": "Add retry logic to the payment client",
    "steps": [
        {"id": "read-code", "name": "Read the payment client"},
        {"id": "implement", "name": "Implement retries with backoff", "deps": ["read-code"]},
        {"id": "run-tests", "name": "Make the tests pass", "deps": ["implement"], "max_retries": 2},
        {"id": "docs", "name": "Document the retry policy", "deps": ["implement"]},
    ],
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the crash-and-recover demonstration in a temporary project",
        description="Simulate a Claude Code session through the real hook and CLI, kill "
        "the agent with SIGKILL mid-step, and show what the next session is told and how "
        "recovery restores the step in flight. Writes only to a temporary directory.",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary project")
    p.set_defaults(func=run)


class _Demo:
    def __init__(self, project: str, ctx: Context) -> None:
        self.project = project
        self.ctx = ctx
        self.state = os.path.join(project, ".claude", "state")
        self.hook_ms: list[float] = []
        self.out: list[str] = []

    def say(self, text: str = "") -> None:
        if not self.ctx.json:
            print(text, flush=True)

    def env(self, session_id: str, agent_pid: int) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("CLAUDE_STATE_DIR", "CLAUDE_STATE_STRICT"):
            env.pop(k, None)
        env.update(
            CLAUDE_PROJECT_DIR=self.project,
            CLAUDE_PID=str(agent_pid),
            CLAUDE_CODE_SESSION_ID=session_id,
        )
        return env

    def hook(self, event: dict[str, Any], env: dict[str, str]) -> str:
        import orjson

        data = orjson.dumps(event) + b"\n"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-I", "-c", HOT],
            input=data,
            capture_output=True,
            env=env,
            cwd=self.project,
            timeout=60,
        )
        self.hook_ms.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"hook exited {proc.returncode}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def cli(self, *args: str, env: dict[str, str], stdin: str | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "claude_state", *args],
            input=stdin,
            text=True,
            capture_output=True,
            env=env,
            cwd=self.project,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"claude-state {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc.stdout


def _event(sid: str, project: str, name: str, **fields: Any) -> dict[str, Any]:
    ev = {
        "session_id": sid,
        "transcript_path": f"{os.path.expanduser('~')}/.claude/projects/demo/{sid}.jsonl",
        "cwd": project,
        "hook_event_name": name,
    }
    ev.update(fields)
    return ev


def _agent() -> subprocess.Popen[bytes]:
    """A stand-in for the Claude Code process that owns a session."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])


def run(args: argparse.Namespace, ctx: Context) -> int:
    import orjson

    project = tempfile.mkdtemp(prefix="claude-state-demo-")
    os.makedirs(os.path.join(project, ".git"))
    d = _Demo(project, ctx)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        result = _story(d, agents, orjson)
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
            a.wait()
        if not args.keep:
            shutil.rmtree(project, ignore_errors=True)
    if ctx.json:
        ctx.emit(result)
    elif args.keep:
        d.say(f"\nThe project is kept at {project}")
    return 0


def _story(d: _Demo, agents: list[subprocess.Popen[bytes]], orjson: Any) -> dict[str, Any]:
    p = d.project
    s1 = str(uuid.uuid4())
    agent1 = _agent()
    agents.append(agent1)
    env1 = d.env(s1, agent1.pid)
    d.say("claude-state demo: a Claude Code session killed mid-step, and what comes after\n")
    d.say(f"project     {p}")
    d.say(f"session 1   {s1} (stand-in agent pid {agent1.pid})\n")

    d.say("1. The agent starts, gets a prompt, and plans the work as a workflow.")
    d.hook(_event(s1, p, "SessionStart", source="startup", model="claude-sonnet-5"), env1)
    d.hook(
        _event(
            s1,
            p,
            "UserPromptSubmit",
            permission_mode="default",
            prompt="Add retry logic to the payment client and make the tests pass",
        ),
        env1,
    )
    d.cli("workflow", "create", "-", env=env1, stdin=orjson.dumps(WORKFLOW).decode())
    read_in = {"file_path": f"{p}/payments/client.py"}
    d.hook(
        _event(
            s1,
            p,
            "PreToolUse",
            tool_name="Read",
            tool_input=read_in,
            tool_use_id="toolu_01Read0001",
        ),
        env1,
    )
    d.cli("workflow", "step", WORKFLOW["id"], "read-code", "--status", "running", env=env1)
    d.hook(
        _event(
            s1,
            p,
            "PostToolUse",
            tool_name="Read",
            tool_input=read_in,
            tool_response={
                "type": "text",
                "file": {
                    "filePath": read_in["file_path"],
                    "content": "class PaymentClient: ...",
                    "numLines": 5,
                },
            },
            tool_use_id="toolu_01Read0001",
            duration_ms=3,
        ),
        env1,
    )
    d.cli(
        "workflow",
        "step",
        WORKFLOW["id"],
        "read-code",
        "--status",
        "completed",
        "--output",
        '{"summary": "charge() posts once, no retry"}',
        env=env1,
    )

    d.say("2. It starts implementing: an edit lands, then a test run begins...")
    d.cli("workflow", "step", WORKFLOW["id"], "implement", "--status", "running", env=env1)
    edit = {
        "file_path": f"{p}/payments/client.py",
        "old_string": "return httpx.post(",
        "new_string": "return self._with_retry(lambda: httpx.post(",
    }
    d.hook(
        _event(
            s1, p, "PreToolUse", tool_name="Edit", tool_input=edit, tool_use_id="toolu_01Edit0002"
        ),
        env1,
    )
    d.hook(
        _event(
            s1,
            p,
            "PostToolUse",
            tool_name="Edit",
            tool_input=edit,
            tool_response={"filePath": edit["file_path"], "success": True},
            tool_use_id="toolu_01Edit0002",
            duration_ms=11,
        ),
        env1,
    )
    bash = {"command": "pytest -q tests/test_payments.py", "description": "Run payment tests"}
    d.hook(
        _event(
            s1, p, "PreToolUse", tool_name="Bash", tool_input=bash, tool_use_id="toolu_01Bash0003"
        ),
        env1,
    )

    d.say(f"3. kill -9 {agent1.pid}: the agent dies. No hook runs; nothing says goodbye.\n")
    agent1.send_signal(signal.SIGKILL)
    agent1.wait()

    status = orjson.loads(d.cli("--json", "status", env=env1))
    d.say("$ claude-state status")
    d.say("   " + d.cli("status", env=env1).rstrip().replace("\n", "\n   ") + "\n")

    s2 = str(uuid.uuid4())
    agent2 = _agent()
    agents.append(agent2)
    env2 = d.env(s2, agent2.pid)
    d.say(f"4. A new session starts: {s2}. SessionStart prints what the agent is told:\n")
    out = d.hook(_event(s2, p, "SessionStart", source="startup"), env2)
    context = ""
    if out.strip():
        context = orjson.loads(out)["hookSpecificOutput"]["additionalContext"]
    for line in (context or "(nothing)").splitlines():
        d.say("   | " + line)
    d.say()

    d.say("5. Recovery: the plan, then applying it (safe to run twice).\n")
    plan = orjson.loads(d.cli("--json", "recover", "--dry-run", s1, env=env2))
    d.say("$ claude-state recover " + s1)
    d.say("   " + d.cli("recover", s1, env=env2).rstrip().replace("\n", "\n   "))
    again = orjson.loads(d.cli("--json", "recover", s1, env=env2))
    shown = orjson.loads(d.cli("--json", "workflow", "show", WORKFLOW["id"], env=env2))
    d.say("\n6. The workflow, as the crash left it, with the interrupted step ready to retry:")
    for st in shown["steps"]:
        d.say(f"   {st['id']:<10} {st['status']:<10} attempts={st['attempts']}")
    d.say(f"   progress {shown['progress']}%, next step: {shown['current_step']}")
    d.cli("workflow", "step", WORKFLOW["id"], "implement", "--status", "running", env=env2)
    d.say("   (and `workflow step payments-retry implement --status running` is accepted)")

    verify = orjson.loads(d.cli("--json", "verify", env=env2))
    ms = sorted(d.hook_ms)
    d.say(
        f"\n7. verify: {verify['checked']} files checked, ok={verify['ok']}. "
        f"Hook calls: {len(ms)}, median {ms[len(ms) // 2]:.1f} ms each "
        "(a new Python process per event)."
    )
    return {
        "project": p,
        "crashed_session": s1,
        "status_after_crash": status,
        "session_start_context": context,
        "recovery_plan": plan,
        "second_recover": again,
        "workflow_after_recovery": shown,
        "verify": verify,
        "hook_calls": len(ms),
        "hook_median_ms": round(ms[len(ms) // 2], 2),
    }
