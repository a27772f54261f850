"""Turning applied workflow ops into the workflow hooks.

* :func:`workflow_listener`: a ``WorkflowStore`` listener that turns applied ops into
  the workflow hooks (``step_start``, ``workflow_complete``...), so every writer that
  attaches it (the CLI, the Python API) fires them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from claude_state.storage.layout import StateDir

__all__ = ["hooks_for_op", "workflow_listener"]


def hooks_for_op(wf: Any, op: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The hooks an op applied to *wf* (its state *after* the op) fires, in order."""
    kind = op.get("op")
    out: list[tuple[str, dict[str, Any]]] = []
    if kind == "step":
        try:
            step = wf.step(op.get("step"))
        except Exception:
            return out
        status = op.get("status")
        if status == "running":
            others_touched = any(
                s.id != step.id and (s.started_at is not None or s.status != "pending")
                for s in wf.steps
            )
            if not others_touched and step.attempts <= 1:
                out.append(("workflow_start", {"workflow": wf}))
            out.append(("step_start", {"workflow": wf, "step": step}))
        elif status == "completed":
            out.append(("step_complete", {"workflow": wf, "step": step}))
            if wf.status == "completed":
                out.append(("workflow_complete", {"workflow": wf}))
        elif status == "failed":
            out.append(("step_failed", {"workflow": wf, "step": step, "error": step.error}))
            if wf.status == "failed":
                out.append(("workflow_failed", {"workflow": wf, "step": step}))
    elif kind == "pause":
        out.append(("workflow_paused", {"workflow": wf}))
    elif kind == "resume":
        out.append(("workflow_resumed", {"workflow": wf}))
    elif kind == "cancel":
        out.append(("workflow_cancelled", {"workflow": wf}))
    return out


def workflow_listener(state: StateDir | None = None) -> Callable[[Any, dict[str, Any]], None]:
    """A ``WorkflowStore.listeners`` entry firing the workflow hooks through
    :func:`claude_state.plugins.notify`: ``store.listeners.append(workflow_listener(state))``.
    """

    def listener(wf: Any, op: dict[str, Any]) -> None:
        from claude_state.plugins import notify

        for name, kwargs in hooks_for_op(wf, op):
            notify(name, state=state, **kwargs)

    return listener
