"""The opt-in blocking policies (``policies`` in the project config).

* ``block_tools_when_paused``: while the session's active workflow is paused, tool calls
  are refused (``PreToolUse`` answers ``permissionDecision: deny``), except a Bash
  command running ``claude-state`` (how the agent resumes the workflow). The hot path
  cannot load workflows, so this module keeps a *gate file* ``sessions/<sid>.gate``
  holding the complete deny answer while the condition holds; the hot path copies it.
  Gates are brought up to date on every cold hook event of the session and, through the
  ``workflow_paused``/``workflow_resumed``/... hooks, when a workflow changes.
* ``keep_working``: ``Stop`` is blocked while the active workflow has a step left to do,
  with that step as the reason (:func:`keep_working_answer`); Claude Code's
  ``stop_hook_active`` is honoured, so the agent is never held in a loop.
"""

from __future__ import annotations

import os
from typing import Any

from claude_state.plugins.config import Config
from claude_state.plugins.hookspecs import hookimpl
from claude_state.storage.layout import StateDir

__all__ = ["PolicyPlugin", "gate_path", "keep_working_answer", "sync_gate"]


def gate_path(state: StateDir, sid: str) -> str:
    from claude_state.ids import validate_id

    return os.path.join(state.sessions, validate_id(sid, "session id") + ".gate")


def _deny(wf: Any) -> bytes:
    import orjson

    reason = (
        f"Workflow {wf.id} ({wf.name}) is paused, and this project refuses tool calls while "
        f"its active workflow is paused. `claude-state workflow resume {wf.id}` resumes it."
    )
    return orjson.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }
    )


def sync_gate(state: StateDir, sid: str, config: Config, record: Any = None) -> bool:
    """Write or remove session *sid*'s gate; True when the gate is now closed.

    :param record: the session record (default: read it, caught up in memory).
    """
    from claude_state.storage.atomic import atomic_write, remove

    path = gate_path(state, sid)
    answer = b""
    if config.block_tools_when_paused:
        if record is None:
            from claude_state.domain.sessions import SessionStore
            from claude_state.errors import NotFoundError

            try:
                record = SessionStore(state).peek(sid)
            except NotFoundError:
                record = None
        from claude_state.domain.workflows import active_workflow

        wf = active_workflow(state, record)
        if wf is not None and wf.status == "paused":
            answer = _deny(wf)
    if not answer:
        if os.path.exists(path):
            remove(path)
        return False
    from claude_state.storage.atomic import read_file

    try:
        if read_file(path) == answer:  # a foreign object there is replaced below
            return True
    except Exception:  # noqa: BLE001, S110 - absent, unreadable or foreign: rewrite it
        pass
    state.ensure(sweep=False)
    atomic_write(path, answer, state.temp)
    return True


def keep_working_answer(state: StateDir, record: Any, event: dict[str, Any]) -> bytes:
    """The ``Stop`` answer of the keep-working policy, or b"" to let the agent stop.

    Blocks only while the active workflow is ``running`` or ``idle`` and has a step
    that can be worked on now, and never when ``stop_hook_active`` is true (the agent
    is already continuing because of a stop hook).
    """
    if event.get("stop_hook_active") is True:
        return b""
    from claude_state.domain.workflows import active_workflow

    wf = active_workflow(state, record)
    if wf is None or wf.status not in ("running", "idle"):
        return b""
    step_id = wf.current_step
    if step_id is None:
        return b""
    step = wf.step(step_id)
    done = sum(1 for s in wf.steps if s.status in ("completed", "skipped"))
    state_word = "in progress" if step.status == "running" else "pending"
    reason = (
        f"Step {step.id} ({step.name}) of workflow {wf.id} is still {state_word}: "
        f"{done} of {len(wf.steps)} steps are done. Continue with step {step.id}, and "
        f"record it with `claude-state workflow step {wf.id} {step.id} --status completed`."
    )
    import orjson

    return orjson.dumps(
        {
            "decision": "block",
            "reason": reason,
            "hookSpecificOutput": {
                "hookEventName": "Stop",
                "additionalContext": (
                    f"Workflow {wf.id} is {wf.progress:g}% done ({done}/{len(wf.steps)} steps)."
                ),
            },
        }
    )


class PolicyPlugin:
    """Built-in plugin ``claude_state.policies``: keeps gate files in step with workflows."""

    def __init__(self, state: StateDir, config: Config) -> None:
        self.state = state
        self.config = config

    def _sync_for(self, workflow: Any) -> None:
        if not self.config.block_tools_when_paused:
            return
        from claude_state.domain.leases import caller_session_id

        sids = {caller_session_id()}
        owner = getattr(workflow, "owner", None) or {}
        sids.add(owner.get("session_id"))
        for sid in sids:
            if isinstance(sid, str):
                try:
                    sync_gate(self.state, sid, self.config)
                except Exception:
                    continue

    @hookimpl
    def workflow_paused(self, workflow: Any) -> None:
        self._sync_for(workflow)

    @hookimpl
    def workflow_resumed(self, workflow: Any) -> None:
        self._sync_for(workflow)

    @hookimpl
    def workflow_cancelled(self, workflow: Any) -> None:
        self._sync_for(workflow)

    @hookimpl
    def workflow_complete(self, workflow: Any) -> None:
        self._sync_for(workflow)
