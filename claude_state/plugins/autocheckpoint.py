"""The built-in auto-checkpoint policy: checkpoints nobody has to remember to take.

* every ``every_steps`` completed steps of a workflow (``step_complete``; 0 turns it
  off): type ``automatic``, tag ``steps``;
* at the end of each agent turn (``turn_end``, Claude Code's ``Stop``), of the
  session's active workflow, unless nothing changed since its last turn checkpoint:
  type ``automatic``, tag ``turn``;
* before a compaction (``pre_compact``): type ``pre_compact``, so the state the agent
  had before its context was summarised can be restored.

Each checkpoint fires ``checkpoint_created``. Settings: ``auto_checkpoint`` in the
project config (``docs/configuration.md``).
"""

from __future__ import annotations

from typing import Any

from claude_state.plugins.calls import call_hook
from claude_state.plugins.config import Config
from claude_state.plugins.hookspecs import hookimpl
from claude_state.storage.layout import StateDir

__all__ = ["AutoCheckpointPlugin"]


class AutoCheckpointPlugin:
    """Built-in plugin ``claude_state.autocheckpoint``."""

    def __init__(self, state: StateDir, config: Config, pm: Any = None) -> None:
        self.state = state
        self.config = config
        self.pm = pm

    def _checkpoints(self) -> Any:
        from claude_state.domain.checkpoints import CheckpointStore
        from claude_state.domain.store import WorkflowStore

        return CheckpointStore(self.state, workflows=WorkflowStore(self.state))

    def _create(self, workflow_id: str, type_: str, tags: tuple[str, ...], text: str) -> Any:
        cp = self._checkpoints().create(workflow_id, type=type_, tags=tags, description=text)
        if self.pm is not None:
            call_hook(self.pm, "checkpoint_created", checkpoint=cp)
        return cp

    @hookimpl
    def step_complete(self, workflow: Any, step: Any) -> None:
        n = self.config.every_steps
        if n <= 0:
            return
        done = sum(1 for s in workflow.steps if s.status == "completed")
        if done and done % n == 0:
            self._create(
                workflow.id,
                "automatic",
                ("auto", "steps"),
                f"automatic checkpoint after {done} completed steps (last: {step.id})",
            )

    @hookimpl
    def turn_end(self, session: Any, event: Any) -> None:
        if not self.config.on_stop:
            return
        from claude_state.domain.workflows import active_workflow

        wf = active_workflow(self.state, session.record)
        if wf is None:
            return
        try:
            previous = [c for c in self._checkpoints().list(wf.id) if "turn" in c.get("tags", ())]
        except Exception:
            previous = []
        if previous:
            last = max(str(c.get("created_at", "")) for c in previous)
            if str(wf.updated_at) <= last:
                return  # nothing changed since the last turn checkpoint
        self._create(wf.id, "automatic", ("turn",), f"end of an agent turn (session {session.id})")

    @hookimpl
    def pre_compact(self, session: Any, trigger: str) -> None:
        if not self.config.on_pre_compact:
            return
        from claude_state.domain.workflows import active_workflow

        wf = active_workflow(self.state, session.record)
        if wf is None:
            return
        self._create(
            wf.id,
            "pre_compact",
            ("pre_compact", str(trigger or "auto")),
            f"before a {trigger or 'auto'} compaction (session {session.id})",
        )
