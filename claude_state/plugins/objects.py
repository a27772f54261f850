"""The stable objects handed to plugins: a session, a hook event, a tool call.

Plugins should depend on these attributes only; they are added to, never renamed. The
domain's ``Workflow``/``Step`` (``claude_state.domain.model``), checkpoint dicts and
``RecoveryPlan`` are passed as they are.

Large values (``tool_input``/``tool_response`` above the inline limit) arrive as blob
references ``{"$blob": <hex>, "size": n}``; ``BlobStore(session.state).resolve(value)``
loads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claude_state.storage.layout import StateDir

__all__ = ["HookEvent", "HookSession", "ToolCall"]


@dataclass(frozen=True)
class HookSession:
    """A Claude Code session as plugins see it.

    :ivar record: the ``SessionRecord`` caught up with the journal when the dispatch
        began (so it may already include events after the one being delivered).
    """

    id: str
    state: StateDir
    record: Any

    @property
    def active_workflow(self) -> str | None:
        """The workflow the session last worked on, if the record names one."""
        return getattr(self.record, "active_workflow", None)

    @property
    def active_step(self) -> str | None:
        return getattr(self.record, "active_step", None)


@dataclass(frozen=True)
class HookEvent:
    """One recorded hook event.

    :ivar name: ``hook_event_name`` (``"PreToolUse"``...).
    :ivar data: the event object as Claude Code sent it (after redaction).
    :ivar seq: its sequence number in the session journal: plugins that must not act
        twice dedupe on ``(session.id, seq)`` (delivery is at-least-once after a crash).
    :ivar t: when the hook received it (epoch seconds).
    """

    name: str
    data: Mapping[str, Any]
    seq: int
    t: float

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass(frozen=True)
class ToolCall:
    """One tool call of the session, attached to the workflow step running at the time.

    :ivar status: ``"started"`` (PreToolUse), ``"completed"`` or ``"failed"``.
    """

    id: str | None
    name: str | None
    input: Any
    response: Any
    error: str | None
    status: str
    seq: int
    t: float
    duration_ms: float | None = None
    agent_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
