"""Delivering journaled hook events to plugins: in order, and once.

The hook's hot path appends events to the session journal and runs no plugin (pluggy
alone costs ~30 ms of start-up). Plugins are fed here instead, by :func:`drain`, which
every cold hook event (``SessionStart``, ``UserPromptSubmit``, ``Stop``...) runs after
journaling itself, and which any reader may run.

Delivery semantics (``docs/hooks.md``):

* **In order**: events are delivered in journal order (``seq``), the order in which
  their hook processes took the journal lock.
* **Exactly once, unless the process dies mid-delivery**: a per-session cursor
  (``sessions/<sid>.dispatch``, the last delivered seq) is advanced after each event.
  A process killed between calling the plugins and writing the cursor delivers that
  one event again next time: at-least-once in that window. ``HookEvent.seq`` (and
  ``ToolCall.seq``) lets a plugin that must not act twice dedupe on
  ``(session.id, seq)``.
* Drains of one session are serialised by ``sessions/<sid>.dispatch.lock``, separate
  from the session lock, so a slow plugin never blocks the hot path's appends.
* The cursor is independent of the session record's own cursor: the record is folded by
  ``SessionStore`` (exactly once, atomically), plugins by this module.

``CLAUDE_STATE_PLUGINS=none`` turns delivery off; the cursor then stays where it is, and
the events are delivered when plugins are turned back on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from claude_state.ids import validate_id
from claude_state.plugins.objects import HookEvent, HookSession, ToolCall
from claude_state.storage import journal
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

__all__ = ["DrainResult", "cursor_path", "drain", "read_cursor"]

#: Event name -> the specific hook it fires (after ``hook_event``).
_SESSION_HOOKS = {
    "SessionStart": "session_start",
    "SessionEnd": "session_end",
    "UserPromptSubmit": "user_prompt",
    "PreToolUse": "tool_call_start",
    "PostToolUse": "tool_call_complete",
    "PostToolUseFailure": "tool_call_complete",
    "SubagentStart": "subagent_start",
    "SubagentStop": "subagent_stop",
    "Stop": "turn_end",
    "PreCompact": "pre_compact",
}


@dataclass
class DrainResult:
    """What a drain did: events delivered, the cursor after it, the caught-up record."""

    delivered: int
    cursor: int
    record: Any


def cursor_path(state: StateDir, sid: str) -> str:
    return os.path.join(state.sessions, validate_id(sid, "session id") + ".dispatch")


def read_cursor(state: StateDir, sid: str) -> int:
    """The last seq delivered to plugins for *sid* (0 when none).

    The cursor is a checksummed frame (kind META). A damaged cursor reads as 0, which
    re-delivers events (plugins are told to expect repeats) and never skips one.
    """
    from claude_state.errors import FrameError
    from claude_state.storage import frame
    from claude_state.storage.safeio import ForeignObjectError, read_regular

    try:
        data = read_regular(cursor_path(state, sid))  # no symlink or FIFO (safeio)
    except (FileNotFoundError, ForeignObjectError):
        return 0
    try:
        _h, payload = frame.decode(data, frame.Kind.META, cursor_path(state, sid))
    except FrameError:
        return 0
    return int(payload) if payload.isdigit() else 0


def _write_cursor(state: StateDir, sid: str, seq: int) -> None:
    # Not flushed on purpose: losing a cursor update to a power cut re-delivers events
    # (at-least-once), which plugins are told to expect; a flush per event would cost
    # a millisecond each. The rename keeps the file whole; the temp file lives in
    # temp/ so an orphan is swept like any other.
    from claude_state.storage import frame
    from claude_state.storage.layout import temp_name

    path = cursor_path(state, sid)
    tmp = temp_name(state.temp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, frame.encode(frame.Kind.META, b"%d" % seq))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _tool_call(
    name: str, seq: int, t: float, ev: dict[str, Any], record: Any, state: StateDir
) -> ToolCall:
    wid = getattr(record, "active_workflow", None)
    step_id = getattr(record, "active_step", None)
    if wid and step_id:
        wid, step_id = _step_at(state, wid, step_id, t)
    status = {"PreToolUse": "started", "PostToolUse": "completed"}.get(name, "failed")
    duration = ev.get("duration_ms")
    agent = ev.get("agent_id")
    return ToolCall(
        id=ev.get("tool_use_id") if isinstance(ev.get("tool_use_id"), str) else None,
        name=ev.get("tool_name") if isinstance(ev.get("tool_name"), str) else None,
        input=ev.get("tool_input"),
        response=ev.get("tool_response"),
        error=ev.get("error") if isinstance(ev.get("error"), str) else None,
        status=status,
        seq=seq,
        t=t,
        duration_ms=float(duration) if isinstance(duration, int | float) else None,
        agent_id=agent if isinstance(agent, str) else None,
        workflow_id=wid,
        step_id=step_id,
    )


_STEP_CACHE: dict[tuple[str, str, str], tuple[float | None, float | None]] = {}


def _step_at(state: StateDir, wid: str, step_id: str, t: float) -> tuple[str | None, str | None]:
    """``(wid, step_id)`` if that step was running at time *t*, else ``(None, None)``.

    Events are delivered after the fact, so the session's *current* step is checked
    against the call's time: a call made before the step started (or after it ended)
    is not attached to it.
    """
    key = (state.root, wid, step_id)
    span = _STEP_CACHE.get(key)
    if span is None:
        from claude_state.clock import parse_iso
        from claude_state.domain.store import WorkflowStore
        from claude_state.errors import ClaudeStateError

        try:
            step = WorkflowStore(state).load(wid).step(step_id)
        except ClaudeStateError:
            return None, None
        start = parse_iso(step.started_at) if step.started_at else None
        end = parse_iso(step.finished_at) if step.finished_at and step.status != "running" else None
        span = (start, end)
        _STEP_CACHE[key] = span
    start, end = span
    if start is None or t < start or (end is not None and t > end):
        return None, None
    return wid, step_id


def _fire(
    pm: Any, seq: int, t: float, ev: dict[str, Any], session: HookSession, foreign: bool = False
) -> None:
    from claude_state.plugins.manager import call_hook

    name = str(ev.get("hook_event_name") or "")
    event = HookEvent(name=name, data=ev, seq=seq, t=t)
    call_hook(pm, "hook_event", session=session, event=event)
    hook = _SESSION_HOOKS.get(name)
    if hook is None or (foreign and hook in ("session_start", "session_end")):
        return
    if hook in ("tool_call_start", "tool_call_complete"):
        call = _tool_call(name, seq, t, ev, session.record, session.state)
        call_hook(pm, hook, session=session, call=call)
    elif hook == "session_end":
        reason = ev.get("reason")
        call_hook(pm, hook, session=session, reason=reason if isinstance(reason, str) else "other")
    elif hook == "user_prompt":
        prompt = ev.get("prompt")
        call_hook(pm, hook, session=session, prompt=prompt if isinstance(prompt, str) else "")
    elif hook == "pre_compact":
        trigger = ev.get("trigger")
        call_hook(
            pm, hook, session=session, trigger=trigger if isinstance(trigger, str) else "auto"
        )
    else:
        call_hook(pm, hook, session=session, event=event)


def drain(state: StateDir, sid: str, *, pm: Any = None, config: Any = None) -> DrainResult:
    """Catch the session record up, then deliver every undelivered journal event.

    :param pm: a plugin manager (default: :func:`get_plugin_manager` for *state*).
    :returns: how many events were delivered, the new cursor and the caught-up record.
    """
    from claude_state.domain.sessions import SessionStore
    from claude_state.plugins.manager import get_plugin_manager, plugin_mode

    validate_id(sid, "session id")
    store = SessionStore(state)
    record = store.catch_up(sid)
    if plugin_mode() == "none":
        return DrainResult(0, read_cursor(state, sid), record)
    if pm is None:
        pm = get_plugin_manager(state, config)
    os.makedirs(state.sessions, 0o700, exist_ok=True)
    import orjson

    from claude_state.storage import jsonio

    delivered = 0
    with FileLock(cursor_path(state, sid) + ".lock"):
        cursor = read_cursor(state, sid)
        session = HookSession(id=sid, state=state, record=record)
        seen: set[tuple[str, str]] = set()
        for seq, payload in journal.read(state, sid, cursor):
            try:
                doc = jsonio.loads(payload)
                ev, t = doc["ev"], float(doc["t"])
                if not isinstance(ev, dict):
                    raise TypeError("event is not an object")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                _write_cursor(state, sid, seq)  # SessionStore logs the bad record
                continue
            key = (str(ev.get("hook_event_name")), str(ev.get("tool_use_id")))
            if ev.get("tool_use_id") and key in seen:
                _write_cursor(state, sid, seq)  # the same call journaled twice
                continue
            seen.add(key)
            # A SessionStart/SessionEnd from a process that does not own the session
            # (sessions.LEASE_ROLES) reaches plugins as the event it is (hook_event), not
            # as the session starting or ending.
            _fire(pm, seq, t, ev, session, foreign=doc.get("lease") == "other")
            _write_cursor(state, sid, seq)
            delivered += 1
            cursor = seq
    return DrainResult(delivered, cursor, record)
