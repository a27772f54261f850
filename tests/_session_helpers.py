"""Shared helpers of the session, lease, recovery and bundle tests (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import orjson

from claude_state.domain import leases
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.staleness import LeaseInfo
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

SID = "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ev(name: str, sid: str = SID, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": sid,
        "hook_event_name": name,
        "cwd": "/home/dev/shop",
        "transcript_path": f"/tmp/{sid}.jsonl",
        **fields,
    }


def append(state: StateDir, sid: str, *events: dict[str, Any], t: float | None = None) -> list[int]:
    return journal.append(state, sid, [journal.wrap(orjson.dumps(e), t) for e in events])


def write_lease(
    state: StateDir,
    sid: str,
    *,
    pid: int,
    start_time: str | None,
    boot_id: str,
    host: str,
    heartbeat_at: float | None = None,
    epoch: int = 1,
    ttl: float = 120.0,
) -> None:
    """A held lease with an arbitrary owner (simulates other hosts, boots, reused pids)."""
    now = time.time() if heartbeat_at is None else heartbeat_at
    owner = ProcessIdentity(
        pid=pid,
        start_time=start_time,
        boot_id=boot_id,
        host=host,
        pid_ns=ProcessIdentity.current().pid_ns,
    )
    info = LeaseInfo(sid, owner, epoch, heartbeat_at=now, acquired_at=now, ttl=ttl)
    leases._write(state, leases.LeaseRecord(info))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Run *code* in a child interpreter; it talks through stdout lines."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def wait_line(proc: subprocess.Popen[str], expect: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"child exited before {expect!r}: {err}")
        if line.strip().startswith(expect):
            return line.strip()
    raise AssertionError(f"timed out waiting for {expect!r}")


#: A child "agent": takes the lease on itself, records hook events, starts a workflow
#: step, prints "ready", then waits to be killed. argv: state_dir sid workflow_id.
AGENT = """
import sys, time, orjson
from claude_state.storage.layout import StateDir
from claude_state.storage import journal
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.sessions import SessionStore
from claude_state.domain import ops
from claude_state.domain.definition import parse_definition
from claude_state.domain.store import WorkflowStore
from claude_state.clock import now_iso

state = StateDir(sys.argv[1]).ensure()
sid, wid = sys.argv[2], sys.argv[3]
store = SessionStore(state)
rec, lease = store.start(sid, ProcessIdentity.current(), pid_source="test")
def hook(**e):
    e.setdefault("session_id", sid)
    e.setdefault("cwd", "/home/dev/shop")
    journal.append(state, sid, [journal.wrap(orjson.dumps(e))])
hook(hook_event_name="SessionStart", source="startup", model="claude-test")
hook(hook_event_name="UserPromptSubmit", prompt="add retries to the payment client")
if wid != "-":
    wfs = WorkflowStore(state)
    wf = parse_definition({"id": wid, "name": "Retry work", "steps": [
        {"id": "plan"}, {"id": "build", "deps": ["plan"]}, {"id": "test", "deps": ["build"]}]})
    wfs.create(wf)
    wfs.apply(wid, ops.op_owner(sid, lease.epoch, now_iso()), epoch=lease.epoch)
    store.note_workflow(sid, wid, "plan")
    for st in ("running", "completed"):
        wfs.apply(wid, ops.op_step("plan", st, at=now_iso()), epoch=lease.epoch)
    wfs.apply(wid, ops.op_step("build", "running", at=now_iso()), epoch=lease.epoch)
    store.note_workflow(sid, wid, "build")
hook(hook_event_name="PreToolUse", tool_name="Read", tool_input={"file_path": "/x/a.py"},
     tool_use_id="toolu_1")
hook(hook_event_name="PostToolUse", tool_name="Read", tool_input={"file_path": "/x/a.py"},
     tool_response={"ok": True}, tool_use_id="toolu_1")
hook(hook_event_name="PreToolUse", tool_name="Bash", tool_input={"command": "pytest -x"},
     tool_use_id="toolu_2")
print("ready", lease.epoch, flush=True)
time.sleep(600)
"""


def start_agent(state: StateDir, sid: str = SID, wid: str = "-") -> subprocess.Popen[str]:
    proc = spawn(AGENT, state.root, sid, wid)
    wait_line(proc, "ready")
    return proc


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()
