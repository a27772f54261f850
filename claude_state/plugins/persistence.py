"""The built-in persistence plugin: what the hook events mean for workflows.

The session record itself is folded from the journal by ``SessionStore`` (every event,
exactly once). This plugin adds what needs both a session and a workflow:

* ``tool_call_complete``: the call is attached to the workflow step that was running
  when the call happened (``op_tool_call``; the step keeps its last 50), so a resumed
  agent sees what the step had already done;
* ``step_start``/``step_complete``/``step_failed``/``workflow_start``: the workflow is
  noted in the calling session's record (``CLAUDE_CODE_SESSION_ID``, exported by Claude
  Code to the commands the agent runs), which is how a crash report and a resume know
  what the session was driving.

Being a plugin, it is exercised through the same hooks third parties use.
"""

from __future__ import annotations

from typing import Any

from claude_state.plugins.hookspecs import hookimpl
from claude_state.storage.layout import StateDir

__all__ = ["PersistencePlugin"]

_MAX_SUMMARY = 300


class PersistencePlugin:
    """Built-in plugin ``claude_state.persistence``."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from claude_state.domain.store import WorkflowStore

            self._store = WorkflowStore(self.state)
        return self._store

    @hookimpl
    def tool_call_complete(self, session: Any, call: Any) -> None:
        if not call.workflow_id or not call.step_id:
            return
        from claude_state.clock import to_iso
        from claude_state.domain.ops import op_tool_call
        from claude_state.domain.sessions import summarize_input
        from claude_state.errors import ClaudeStateError

        record = {
            "tool_use_id": call.id,
            "tool_name": call.name,
            "summary": summarize_input(call.name, call.input)[:_MAX_SUMMARY],
            "status": call.status,
            "at": to_iso(call.t),
            "session_id": session.id,
            "seq": call.seq,
        }
        if call.error:
            record["error"] = str(call.error)[:_MAX_SUMMARY]
        try:
            wf = self.store.load(call.workflow_id)
            if any(
                c.get("session_id") == session.id and c.get("seq") == call.seq
                for c in wf.step(call.step_id).tool_calls
            ):
                return  # delivered again after a crash: already attached
            self.store.apply(call.workflow_id, op_tool_call(call.step_id, record, to_iso(call.t)))
        except ClaudeStateError:
            return  # workflow gone, finished or the step no longer accepts calls

    def _note(self, workflow: Any, step: Any = None) -> None:
        from claude_state.domain.leases import caller_session_id
        from claude_state.domain.sessions import SessionStore

        sid = caller_session_id()
        if sid is None:
            return
        SessionStore(self.state).note_workflow(
            sid, workflow.id, step.id if step is not None and step.status == "running" else None
        )

    @hookimpl
    def workflow_start(self, workflow: Any) -> None:
        self._note(workflow)

    @hookimpl
    def step_start(self, workflow: Any, step: Any) -> None:
        self._note(workflow, step)

    @hookimpl
    def step_complete(self, workflow: Any, step: Any) -> None:
        self._note(workflow, step)

    @hookimpl
    def step_failed(self, workflow: Any, step: Any, error: str | None) -> None:
        self._note(workflow, step)
