"""Only the lease's owner ends a session (issue 16, cases a-d), with real processes.

Stand-in agents are real ``sleep`` processes: each hook runs the real hot entry point
(the command ``install`` writes) with ``CLAUDE_PID`` naming its agent, as Claude Code
2.1.214+ does, and agents die by SIGKILL.

(a) a crashed session, then a ``claude --resume`` that fails and fires only
    ``SessionEnd``: the crash stays reported and recoverable;
(b) a second terminal resumes a live session and exits: the first agent keeps its
    lease, and killing it later is detected;
(c) a resume takes the lease for the new agent: killing it is detected;
(d) a resume of an unknown id (only ``SessionEnd``): no ``ended`` session with
    ``pid: null``.

Each test has its control: the same event from the owner does end the session, so the
assertions tell the two apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookutil import cli_json, event, hook_env, run_hook, state_root

from claude_state.clock import now_iso
from claude_state.domain import leases
from claude_state.domain.definition import parse_definition
from claude_state.domain.ops import op_step
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.storage.layout import StateDir

SID = "aaaaaaaa-1111-4000-8000-00000000000a"
WID = "release-42"


class Agents:
    """Stand-in agent processes, SIGKILLed at the end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "600"])
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
def agents() -> Iterator[Agents]:
    a = Agents()
    yield a
    for p in a.procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def hook(
    tmp: Path,
    agent: subprocess.Popen[bytes],
    name: str,
    env_extra: dict[str, str] | None = None,
    **fields: Any,
) -> bytes:
    env = hook_env(tmp, CLAUDE_PID=str(agent.pid), **(env_extra or {}))
    r = run_hook(event(name, SID, **fields), env)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def cli(tmp: Path, *args: str) -> Any:
    return cli_json(tmp, *args)


def state(tmp: Path) -> StateDir:
    return StateDir(str(state_root(tmp)))


def show(tmp: Path, sid: str = SID) -> dict[str, Any]:
    out = cli(tmp, "sessions", "show", sid)
    assert isinstance(out, dict)
    return out


def start_working(tmp: Path, agent: subprocess.Popen[bytes]) -> None:
    """The agent starts the session, drives a workflow to a running step, and has a
    Bash call in flight."""
    hook(tmp, agent, "SessionStart", source="startup")
    hook(tmp, agent, "UserPromptSubmit", prompt="ship release 42")
    sd = state(tmp)
    wfs = WorkflowStore(sd)
    wfs.create(
        parse_definition({"id": WID, "steps": [{"id": "plan"}, {"id": "build", "deps": ["plan"]}]})
    )
    for step, status in (("plan", "running"), ("plan", "completed"), ("build", "running")):
        wfs.apply(WID, op_step(step, status, at=now_iso()))
    SessionStore(sd).note_workflow(SID, WID, "build")
    hook(
        tmp,
        agent,
        "PreToolUse",
        tool_name="Bash",
        tool_use_id="toolu_1",
        tool_input={"command": "make upload"},
    )


def lease_of(tmp: Path) -> leases.LeaseRecord:
    rec = leases.read(state(tmp), SID)
    assert rec is not None
    return rec


# -- (a) ------------------------------------------------------------------------------------


def test_a_failed_resume_of_a_crashed_session_keeps_the_crash(
    tmp_path: Path, agents: Agents
) -> None:
    a = agents.spawn()
    start_working(tmp_path, a)
    agents.kill(a)
    assert show(tmp_path)["status"] == "crashed"
    epoch = lease_of(tmp_path).epoch

    b = agents.spawn()  # `claude --resume SID` that fails: only SessionEnd fires
    hook(tmp_path, b, "SessionEnd", reason="other")

    d = show(tmp_path)
    assert d["status"] == "crashed"
    assert d["pid"] == a.pid
    assert d["foreign_events"] == 1 and d["last_foreign_event"]["pid"] == b.pid
    lease = lease_of(tmp_path)
    assert lease.held and lease.epoch == epoch and lease.info.owner.pid == a.pid
    [plan] = cli(tmp_path, "recover", "--dry-run")["plans"]
    assert plan["session_id"] == SID and plan["strategy"] == "resume_from_wal"
    [w] = plan["recoverable_workflows"]
    assert w["id"] == WID and w["step_in_flight"] == "build"
    # the event is recorded, as what it is
    assert SessionStore(state(tmp_path)).peek(SID).events == 4

    # recover still has its plan: the workflow is not orphaned as running
    [applied] = cli(tmp_path, "recover", SID)["plans"]
    assert applied["applied"] is True
    wf = cli(tmp_path, "workflow", "show", WID)
    assert {s["id"]: s["status"] for s in wf["steps"]}["build"] == "pending"

    # a second failed resume of the now recovered session changes nothing
    hook(tmp_path, b, "SessionEnd", reason="other")
    assert show(tmp_path)["status"] == "recovered"


def test_a_control_the_owners_own_session_end_does_end_it(tmp_path: Path, agents: Agents) -> None:
    """The same SessionEnd carrying the owner's pid (its hook outliving it) ends the
    session and releases the lease: the test above fails if ownership is not checked."""
    a = agents.spawn()
    start_working(tmp_path, a)
    agents.kill(a)
    hook(tmp_path, a, "SessionEnd", reason="prompt_input_exit")
    d = show(tmp_path)
    assert d["status"] == "ended" and d["pid"] == a.pid
    assert not lease_of(tmp_path).held
    assert cli(tmp_path, "recover", "--dry-run")["plans"] == []


# -- (b) ------------------------------------------------------------------------------------


def test_b_second_terminal_exiting_leaves_the_first_agent_its_lease(
    tmp_path: Path, agents: Agents
) -> None:
    a = agents.spawn()
    start_working(tmp_path, a)
    epoch = lease_of(tmp_path).epoch

    b = agents.spawn()  # a second terminal resumes the live session...
    hook(tmp_path, b, "SessionStart", source="resume")
    lease = lease_of(tmp_path)
    assert lease.held and lease.info.owner.pid == a.pid and lease.epoch == epoch
    d = show(tmp_path)
    assert d["status"] == "active" and d["resumes"] == 0
    assert [c["tool_use_id"] for c in d["in_flight"]] == ["toolu_1"]  # a's call still runs

    hook(tmp_path, b, "SessionEnd", reason="prompt_input_exit")  # ...and exits
    d = show(tmp_path)
    assert d["status"] == "active" and d["pid"] == a.pid
    assert d["foreign_events"] == 2
    lease = lease_of(tmp_path)
    assert lease.held and lease.info.owner.pid == a.pid and lease.epoch == epoch

    agents.kill(a)  # the first agent dies: detected
    assert show(tmp_path)["status"] == "crashed"
    [plan] = cli(tmp_path, "recover", "--dry-run")["plans"]
    assert plan["session_id"] == SID and plan["recoverable_workflows"][0]["id"] == WID


def test_b_control_the_first_agents_session_end_ends_it(tmp_path: Path, agents: Agents) -> None:
    a = agents.spawn()
    start_working(tmp_path, a)
    b = agents.spawn()
    hook(tmp_path, b, "SessionStart", source="resume")
    hook(tmp_path, a, "SessionEnd", reason="prompt_input_exit")
    assert show(tmp_path)["status"] == "ended"
    assert not lease_of(tmp_path).held
    agents.kill(a)
    assert show(tmp_path)["status"] == "ended"


# -- (c) ------------------------------------------------------------------------------------


def test_c_resume_takes_the_lease_so_killing_the_new_agent_is_detected(
    tmp_path: Path, agents: Agents
) -> None:
    a = agents.spawn()
    start_working(tmp_path, a)
    agents.kill(a)
    first_epoch = lease_of(tmp_path).epoch

    b = agents.spawn()
    out = hook(tmp_path, b, "SessionStart", source="resume")
    assert WID in out.decode()  # its own unfinished workflow is named in the context
    lease = lease_of(tmp_path)
    assert lease.held and lease.info.owner.pid == b.pid and lease.epoch > first_epoch
    d = show(tmp_path)
    assert d["status"] == "active" and d["pid"] == b.pid and d["resumes"] == 1

    agents.kill(b)
    assert show(tmp_path)["status"] == "crashed"
    [plan] = cli(tmp_path, "recover", "--dry-run")["plans"]
    assert plan["session_id"] == SID


def test_c_control_the_resumed_agent_ending_ends_the_session(
    tmp_path: Path, agents: Agents
) -> None:
    a = agents.spawn()
    start_working(tmp_path, a)
    agents.kill(a)
    b = agents.spawn()
    hook(tmp_path, b, "SessionStart", source="resume")
    hook(tmp_path, b, "SessionEnd", reason="prompt_input_exit")
    agents.kill(b)
    assert show(tmp_path)["status"] == "ended"
    assert cli(tmp_path, "recover", "--dry-run")["plans"] == []


# -- (d) ------------------------------------------------------------------------------------


def test_d_failed_resume_of_an_unknown_id_names_its_process(tmp_path: Path, agents: Agents) -> None:
    b = agents.spawn()
    hook(tmp_path, b, "SessionEnd", reason="other")
    d = show(tmp_path)
    assert d["status"] == "ended"
    assert d["pid"] == b.pid  # never `ended` with pid null
    assert d["events"] == 1
    [listed] = cli(tmp_path, "sessions", "list")
    assert listed["pid"] == b.pid
    assert cli(tmp_path, "recover", "--dry-run")["plans"] == []
    assert leases.read(state(tmp_path), SID) is None  # no lease invented for it


# -- who the owner is -----------------------------------------------------------------------


def test_a_pid_reused_by_another_process_is_not_the_owner(tmp_path: Path, agents: Agents) -> None:
    """The lease names pid P with another start time (P died, the pid was handed to a new
    process): a SessionEnd from the new P neither ends the session nor releases the
    lease, and the session reads as crashed."""
    from _session_helpers import write_lease

    from claude_state.domain.procinfo import ProcessIdentity

    p = agents.spawn()
    me = ProcessIdentity.current(p.pid)
    sd = state(tmp_path)
    sd.ensure()
    write_lease(sd, SID, pid=p.pid, start_time="ticks:1", boot_id=me.boot_id, host=me.host)
    hook(tmp_path, p, "SessionEnd", reason="other")
    d = show(tmp_path)
    assert d["status"] == "crashed" and d["foreign_events"] == 1
    assert lease_of(tmp_path).held
    # control: the same pid with its real start time is the owner
    write_lease(sd, SID, pid=p.pid, start_time=me.start_time, boot_id=me.boot_id, host=me.host)
    hook(tmp_path, p, "SessionEnd", reason="other")
    assert show(tmp_path)["status"] == "ended" and not lease_of(tmp_path).held


def test_plugins_are_not_told_a_foreign_session_end_ends_the_session(
    tmp_path: Path, agents: Agents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plugins get a non-owner's SessionEnd as the event it is (``hook_event``), never as
    ``session_end``; the owner's SessionEnd is a ``session_end`` (the control)."""
    from claude_state.plugins import hookimpl, manager
    from claude_state.plugins.dispatch import drain

    class Recorder:
        def __init__(self) -> None:
            self.ends: list[str] = []
            self.events: list[str] = []

        @hookimpl
        def session_end(self, session: Any, reason: str) -> None:
            self.ends.append(reason)

        @hookimpl
        def hook_event(self, session: Any, event: Any) -> None:
            self.events.append(event.name)

    quiet = {"CLAUDE_STATE_PLUGINS": "none"}  # the hooks only record; we drain below
    a, b = agents.spawn(), agents.spawn()
    hook(tmp_path, a, "SessionStart", quiet, source="startup")
    hook(tmp_path, b, "SessionEnd", quiet, reason="other")
    hook(tmp_path, a, "SessionEnd", quiet, reason="prompt_input_exit")
    monkeypatch.delenv("CLAUDE_STATE_PLUGINS", raising=False)
    monkeypatch.setenv("CLAUDE_STATE_CONFIG", str(tmp_path / "none.json"))
    manager.reset()
    try:
        r = Recorder()
        sd = state(tmp_path)
        manager.get_plugin_manager(sd).register(r, name="recorder")
        drain(sd, SID)
    finally:
        manager.reset()
    assert r.events == ["SessionStart", "SessionEnd", "SessionEnd"]
    assert r.ends == ["prompt_input_exit"]
