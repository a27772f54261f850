"""What a killed agent left running is named in the recovery plan, and only that.

Real processes: a stand-in agent (a Python child) starts ``sh -c 'sleep 60 & ...'``
with the environment Claude Code gives the commands its agent runs, and is SIGKILLed;
its ``sh`` and ``sleep`` keep running, re-parented. The plan names them (pid, command,
age), the next session's context lists them, and ``recover --kill-orphans`` ends them.
Controls: an unrelated ``sleep 60`` started by the test, and a ``sleep 60`` with the
same session id under a second, live agent of the same session (a second terminal),
are never named nor touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookutil import check_stdout, cli_json, event, hook_env, run_hook

from claude_state.adapters.claude_code.context import build_context
from claude_state.domain.procinfo import pid_alive, process_start_token

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/environ"), reason="orphans are identified through /proc"
)

SID = "cccccccc-3333-4000-8000-00000000000c"

#: A stand-in agent: runs a Bash-like command the way Claude Code does (the session id
#: and its own pid in the environment) and reports the pids, then waits to be killed.
AGENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    env = dict(os.environ, CLAUDE_CODE_SESSION_ID=sys.argv[1], CLAUDE_PID=str(os.getpid()))
    sh = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], env=env,
                          stdout=subprocess.PIPE, text=True)
    sleep_pid = int(sh.stdout.readline())
    print("ready", sh.pid, sleep_pid, flush=True)
    time.sleep(600)
    """
)


class Procs:
    """Every process this test started (and the orphans it made), ended at the end."""

    def __init__(self) -> None:
        self.popen: list[subprocess.Popen[Any]] = []
        self.pids: dict[int, str | None] = {}

    def track(self, pid: int) -> None:
        self.pids[pid] = process_start_token(pid)

    def cleanup(self) -> None:
        for p in self.popen:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        for pid, token in self.pids.items():
            if token is not None and process_start_token(pid) == token:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.cleanup()


def start_agent(procs: Procs) -> tuple[subprocess.Popen[str], int, int]:
    agent = subprocess.Popen([sys.executable, "-c", AGENT, SID], stdout=subprocess.PIPE, text=True)
    procs.popen.append(agent)
    assert agent.stdout is not None
    word, sh_pid, sleep_pid = agent.stdout.readline().split()
    assert word == "ready"
    procs.track(int(sh_pid))
    procs.track(int(sleep_pid))
    return agent, int(sh_pid), int(sleep_pid)


def cli(tmp: Path, *args: str) -> Any:
    return cli_json(tmp, *args)


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_killed_agents_processes_are_named_and_ended_and_nothing_else(
    tmp_path: Path, procs: Procs
) -> None:
    unrelated = subprocess.Popen(["sleep", "60"])  # control 1: no evidence at all
    procs.popen.append(unrelated)
    agent, sh_pid, sleep_pid = start_agent(procs)
    r = run_hook(
        event("SessionStart", SID, source="startup"), hook_env(tmp_path, CLAUDE_PID=str(agent.pid))
    )
    assert r.returncode == 0, r.stderr
    # control 2: a second, live agent of the same session (started after the first)
    # runs a command with the same session id in its environment
    second, second_sh, second_sleep = start_agent(procs)

    plan = cli(tmp_path, "recover", "--dry-run", SID)["plans"][0]
    assert plan["status"] == "active" and plan["orphans"] == []  # nothing while it lives

    agent.kill()
    agent.wait(10)
    assert pid_alive(sh_pid) and pid_alive(sleep_pid)  # the kill left them running

    [plan] = cli(tmp_path, "recover", "--dry-run")["plans"]
    assert plan["session_id"] == SID and plan["status"] == "crashed"
    named = {o["pid"]: o for o in plan["orphans"]}
    assert set(named) == {sh_pid, sleep_pid}, plan["orphans_note"]
    assert named[sleep_pid]["command"] == "sleep 60"
    assert "sleep 60" in named[sh_pid]["command"]
    for o in named.values():
        assert isinstance(o["age_seconds"], float) and 0 <= o["age_seconds"] < 120
        assert o["started_at"] and f"CLAUDE_CODE_SESSION_ID={SID}" in o["evidence"]
    for pid in (unrelated.pid, second.pid, second_sh, second_sleep):
        assert pid not in named

    # the next session is told which processes were left running
    other = subprocess.Popen(["sleep", "60"])
    procs.popen.append(other)
    r = run_hook(
        event("SessionStart", "dddddddd-4444-4000-8000-00000000000d", source="startup"),
        hook_env(tmp_path, CLAUDE_PID=str(other.pid)),
    )
    doc = check_stdout(r.stdout, "SessionStart")
    assert doc is not None
    text = doc["hookSpecificOutput"]["additionalContext"]
    assert f"pid {sleep_pid}: sleep 60" in text and f"pid {sh_pid}:" in text
    assert f"claude-state recover {SID} --kill-orphans" in text
    assert f"pid {unrelated.pid}" not in text

    [applied] = cli(tmp_path, "recover", SID, "--kill-orphans")["plans"]
    assert applied["applied"] is True
    results = {k["pid"]: k["result"] for k in applied["killed_orphans"]}
    assert set(results) == {sh_pid, sleep_pid}
    assert set(results.values()) <= {"terminated", "killed", "gone"}
    assert wait_gone(sh_pid) and wait_gone(sleep_pid)
    # the controls still run
    for pid in (unrelated.pid, second.pid, second_sh, second_sleep):
        assert pid_alive(pid), pid

    # recovered and killed: named no more
    [after] = cli(tmp_path, "recover", SID, "--dry-run")["plans"]
    assert after["status"] == "recovered" and after["orphans"] == []


def test_a_reused_pid_is_never_signalled(procs: Procs) -> None:
    """The kill re-checks each pid's start token: a pid now naming another process
    (here: a wrong token) is reported ``reused`` and left alone."""
    from claude_state.domain.procinfo import kill_orphans

    victim = subprocess.Popen(["sleep", "60"])
    procs.popen.append(victim)
    [res] = kill_orphans([{"pid": victim.pid, "start_token": "ticks:1"}], grace=0.1)
    assert res == {"pid": victim.pid, "result": "reused"}
    assert victim.poll() is None


def test_context_lists_one_tool_call_a_line_and_the_call_in_flight_once() -> None:
    plan = {
        "session_id": SID,
        "last_activity": {
            "at": "2026-12-02T10:00:00Z",
            "last_tool_calls": [
                {"tool_name": "Read", "tool_use_id": "t1", "summary": "/x/a.py", "status": "ok"},
                {
                    "tool_name": "Bash",
                    "tool_use_id": "t2",
                    "summary": "cd web; npm test; echo done",
                    "status": "ok",
                },
                {
                    "tool_name": "Bash",
                    "tool_use_id": "t3",
                    "summary": "make upload; make\n  notify",
                    "status": "pending",
                },
            ],
        },
        "in_flight_tool_calls": [
            {"tool_name": "Bash", "tool_use_id": "t3", "summary": "make upload; make\n  notify"}
        ],
        "recoverable_workflows": [],
    }
    text = build_context([plan])
    lines = text.splitlines()
    assert "  - Read: /x/a.py (ok)" in lines
    assert "  - Bash: cd web; npm test; echo done (ok)" in lines  # "; " kept inside its line
    assert text.count("make upload") == 1  # the call in flight, once
    i = lines.index("- Tool calls in flight when it stopped (no result recorded):")
    assert lines[i + 1] == "  - Bash: make upload; make notify"


def test_a_resume_after_the_kill_tells_the_new_agent_what_is_still_running(
    tmp_path: Path, procs: Procs
) -> None:
    """The common path: the crashed session is resumed (and recovered on the way), so no
    other session's context names it; the resumed agent's own context does."""
    agent, sh_pid, sleep_pid = start_agent(procs)
    r = run_hook(
        event("SessionStart", SID, source="startup"), hook_env(tmp_path, CLAUDE_PID=str(agent.pid))
    )
    assert r.returncode == 0, r.stderr
    agent.kill()
    agent.wait(10)
    resumed = subprocess.Popen(["sleep", "60"])
    procs.popen.append(resumed)
    r = run_hook(
        event("SessionStart", SID, source="resume"), hook_env(tmp_path, CLAUDE_PID=str(resumed.pid))
    )
    doc = check_stdout(r.stdout, "SessionStart")
    assert doc is not None, r.stderr
    text = doc["hookSpecificOutput"]["additionalContext"]
    assert f"The previous agent of this session ({SID}) was killed" in text
    assert f"pid {sleep_pid}: sleep 60" in text and f"pid {sh_pid}:" in text
    # the session itself is the resumed agent's now
    assert cli(tmp_path, "sessions", "show", SID)["pid"] == resumed.pid
