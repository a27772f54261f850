"""Sessions: the record of one agent session, built from its durable event journal.

The hook's hot path appends each raw Claude Code hook event to ``sessions/<sid>.wal``
without interpreting it (``claude_state.storage.journal``). This module interprets
them later ("catch up"): :func:`apply_event` is a pure function folding one event into
a :class:`SessionRecord`, and :meth:`SessionStore.catch_up` applies every journal record
after the record's cursor (``applied_seq``) and saves the record with the cursor in one
atomic write, so a crash at any point either keeps or redoes a whole catch-up, never
half of one (events are applied exactly once to the record).

Status as stored is ``active``, ``ended`` or ``recovered``. ``crashed`` is never stored:
it is derived at read time from the lease (a stale lease on a session that never ended),
because the process that would have written it is, by definition, dead.

Who sent an event matters for two of them. A ``SessionStart`` or ``SessionEnd`` may come
from a process that does not own the session: a second terminal resuming a live
session, or a ``claude --resume`` that fails and fires only ``SessionEnd``. The hook
decides, when it journals such an event, how the sender stands to the session's lease
(:data:`LEASE_ROLES`) and records that next to the event (:func:`wrap_event`); the fold
then lets only the owner end the session, and only a process that can take the lease
reactivate it. An event from a non-owner is kept and counted as what it is
(``foreign_events``), never as the owner's. Events journaled without a role (older
journals, the hot path) are folded as before.

Reading commands use :meth:`SessionStore.peek` (record + pending journal events applied
in memory, nothing written), so counts include events still only in the journal without
advancing the cursor behind the plugins' back.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from claude_state.errors import FrameError, InvalidInputError, NotFoundError
from claude_state.ids import is_valid_id, validate_id
from claude_state.storage import frame, journal
from claude_state.storage.docfile import read_doc, write_doc
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

__all__ = [
    "LEASE_ROLES",
    "MAX_LAST_TOOL_CALLS",
    "ROLE_FREE",
    "ROLE_OTHER",
    "ROLE_OWNER",
    "ROLE_UNOWNED",
    "SessionRecord",
    "SessionStore",
    "apply_event",
    "summarize_input",
    "wrap_event",
]

SCHEMA_VERSION = 1
MAX_LAST_TOOL_CALLS = 10
MAX_IN_FLIGHT = 100
MAX_SUBAGENTS = 100
MAX_TEXT = 2000
SUMMARY_LEN = 160
STATUSES = ("active", "ended", "recovered")

#: How the sender of a journaled ``SessionStart``/``SessionEnd`` stands to the lease
#: (journal wrapper key ``"lease"``; the sender's agent pid is ``"by"``):
#:
#: * ``owner``: the sender's agent holds the lease;
#: * ``free``: (``SessionStart``) nobody live holds it (no lease, a tombstone, a dead
#:   owner): the sender takes it over;
#: * ``other``: another live process holds it (``SessionStart``), or (``SessionEnd``) the
#:   sender does not hold it (someone else does, dead or alive, or it was released);
#: * ``unowned``: (``SessionEnd``) the session never had a lease: no agent ever started it
#:   here, and the sender is the only process ever seen with it.
ROLE_OWNER = "owner"
ROLE_FREE = "free"
ROLE_OTHER = "other"
ROLE_UNOWNED = "unowned"
LEASE_ROLES = frozenset({ROLE_OWNER, ROLE_FREE, ROLE_OTHER, ROLE_UNOWNED})

#: ``on_event(seq, t, event, record)``: called for each event applied by a catch-up.
OnEvent = Callable[[int, float, dict[str, Any], "SessionRecord"], None]


def iso_or_none(t: float | None) -> str | None:
    if t is None:
        return None
    from claude_state.clock import to_iso

    return to_iso(t)


def _clip(text: Any, n: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def summarize_input(tool_name: str | None, tool_input: Any) -> str:
    """A one-line, bounded summary of a tool call's input (for status and recovery text).

    The most telling field is picked for the common tools (the command of ``Bash``, the
    path of file tools, the pattern of searches); anything else is compact JSON, clipped.
    """
    if isinstance(tool_input, dict):
        for key in (
            "command",
            "file_path",
            "path",
            "pattern",
            "url",
            "query",
            "description",
            "prompt",
        ):
            v = tool_input.get(key)
            if isinstance(v, str) and v:
                return _clip(" ".join(v.split()), SUMMARY_LEN) or ""
    if tool_input is None:
        return ""
    try:
        text = frame.dumps(tool_input).decode("utf-8", "replace")
    except InvalidInputError:
        text = repr(tool_input)
    return _clip(text, SUMMARY_LEN) or ""


@dataclass
class SessionRecord:
    """Everything known about one session, derived from its journal (plus a few notes).

    Times are float epoch seconds (rendered as ISO text by :meth:`summary`-style views).
    """

    id: str
    status: str = "active"
    agent_pid: int | None = None
    agent_pid_source: str | None = None
    host: str | None = None
    cwd: str | None = None
    project: str | None = None
    transcript_path: str | None = None
    model: str | None = None
    source: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    recovered_at: float | None = None
    last_activity: float | None = None
    last_prompt: str | None = None
    last_assistant_message: str | None = None
    #: Last :data:`MAX_LAST_TOOL_CALLS` calls: tool_name, tool_use_id, summary, status
    #: (pending, ok, failed, interrupted), at, and error for failures.
    last_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: tool_use_id -> call, for calls with a PreToolUse and no PostToolUse yet.
    in_flight: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    tool_calls: int = 0
    failed_tool_calls: int = 0
    compactions: int = 0
    workflows: list[str] = field(default_factory=list)
    active_workflow: str | None = None
    active_step: str | None = None
    resumes: int = 0
    #: Events from a process that did not own the session (see the module docstring),
    #: and the last of them: event, pid, at, and its reason or source.
    foreign_events: int = 0
    last_foreign_event: dict[str, Any] | None = None
    subagents: list[dict[str, Any]] = field(default_factory=list)
    #: Journal cursor: every record with ``seq <= applied_seq`` is folded in.
    applied_seq: int = 0
    revision: int = 0
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> SessionRecord:
        """:raises InvalidInputError: when *data* is not a session record."""
        if not isinstance(data, dict):
            raise InvalidInputError("session record must be an object")
        sid = data.get("id")
        validate_id(sid, "session id")
        known = {f.name: f for f in fields(cls)}
        kwargs = {k: _copy(v) for k, v in data.items() if k in known}
        rec = cls(**kwargs)
        if rec.status not in STATUSES:
            raise InvalidInputError(f"session {sid}: unknown status {rec.status!r}")
        if not isinstance(rec.applied_seq, int) or not isinstance(rec.events, int):
            raise InvalidInputError(f"session {sid}: malformed counters")
        if not isinstance(rec.in_flight, dict) or not isinstance(rec.last_tool_calls, list):
            raise InvalidInputError(f"session {sid}: malformed tool calls")
        if not isinstance(rec.workflows, list):
            raise InvalidInputError(f"session {sid}: malformed workflows")
        return rec

    def note_workflow(self, workflow_id: str, step_id: str | None = None) -> None:
        """Record that this session worked on *workflow_id* (and, if given, its step)."""
        if workflow_id not in self.workflows:
            self.workflows.append(workflow_id)
        self.active_workflow = workflow_id
        self.active_step = step_id


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


# -- the pure fold --------------------------------------------------------------------------


def _push_call(rec: SessionRecord, call: dict[str, Any]) -> None:
    rec.last_tool_calls.append(call)
    if len(rec.last_tool_calls) > MAX_LAST_TOOL_CALLS:
        del rec.last_tool_calls[: len(rec.last_tool_calls) - MAX_LAST_TOOL_CALLS]


def interrupt_in_flight(rec: SessionRecord) -> None:
    """In-flight calls of a process that is gone will never complete: mark them."""
    for call_id in list(rec.in_flight):
        for c in rec.last_tool_calls:
            if c.get("tool_use_id") == call_id and c.get("status") == "pending":
                c["status"] = "interrupted"
    rec.in_flight.clear()


def _note_foreign(
    rec: SessionRecord, name: Any, t: float, ev: dict[str, Any], by: int | None
) -> None:
    rec.foreign_events += 1
    detail = ev.get("reason") if name == "SessionEnd" else ev.get("source")
    rec.last_foreign_event = {
        "event": name,
        "pid": by,
        "at": t,
        "detail": detail if isinstance(detail, str) else None,
    }


def apply_event(
    rec: SessionRecord,
    seq: int,
    t: float,
    ev: dict[str, Any],
    lease_role: str | None = None,
    by: int | None = None,
) -> None:
    """Fold one hook event (journal record *seq*, received at *t*) into *rec*, in place.

    Pure: no I/O, no clock. Unknown events only count and move ``last_activity``.
    *lease_role* and *by* are what the hook recorded about the sender of a
    ``SessionStart``/``SessionEnd`` (:data:`LEASE_ROLES`, the sender's agent pid); None
    for events journaled without them, which are folded as the owner's.
    """
    name = ev.get("hook_event_name")
    rec.events += 1
    rec.applied_seq = max(rec.applied_seq, seq)
    if rec.last_activity is None or t > rec.last_activity:
        rec.last_activity = t
    if rec.started_at is None:
        rec.started_at = t
    for key in ("cwd", "transcript_path"):
        v = ev.get(key)
        if isinstance(v, str) and v and getattr(rec, key) is None:
            setattr(rec, key, v)
    agent_id = ev.get("agent_id")
    if isinstance(agent_id, str) and agent_id and name != "SubagentStop":
        _note_subagent(rec, agent_id, ev.get("agent_type"), t, done=False)

    if name in ("SessionStart", "SessionEnd") and lease_role == ROLE_OTHER:
        # A second terminal on a live session, or a failed resume of a crashed one:
        # recorded, but it neither ends, reactivates nor takes over the session.
        _note_foreign(rec, name, t, ev, by)
        return
    if name == "SessionStart":
        source = ev.get("source")
        rec.source = source if isinstance(source, str) else rec.source
        if isinstance(ev.get("model"), str):
            rec.model = ev["model"]
        if rec.events > 1 and source in ("resume", "startup"):
            # A new agent process took the session over: the old one's calls are dead.
            rec.resumes += 1
            interrupt_in_flight(rec)
        if rec.status != "active":
            rec.status = "active"
            rec.ended_at = None
            rec.end_reason = None
    elif name == "UserPromptSubmit":
        rec.last_prompt = _clip(ev.get("prompt"))
    elif name == "PreToolUse":
        call_id = ev.get("tool_use_id")
        key = call_id if isinstance(call_id, str) and call_id else f"seq-{seq}"
        call = {
            "tool_name": ev.get("tool_name"),
            "tool_use_id": key,
            "summary": summarize_input(ev.get("tool_name"), ev.get("tool_input")),
            "status": "pending",
            "at": t,
        }
        if key in rec.in_flight:
            return  # the same call journaled twice (a retried hook): already pending
        if len(rec.in_flight) < MAX_IN_FLIGHT:
            rec.in_flight[key] = dict(call)
        _push_call(rec, call)
    elif name in ("PostToolUse", "PostToolUseFailure"):
        ok = name == "PostToolUse"
        call_id = ev.get("tool_use_id")
        started = rec.in_flight.pop(call_id, None) if isinstance(call_id, str) else None
        status = "ok" if ok else "failed"
        match = next(
            (
                c
                for c in reversed(rec.last_tool_calls)
                if call_id and c.get("tool_use_id") == call_id
            ),
            None,
        )
        if started is None and match is not None and match.get("status") in ("ok", "failed"):
            return  # a completion journaled twice: counted once
        rec.tool_calls += 1
        if not ok:
            rec.failed_tool_calls += 1
        if match is None:
            match = {
                "tool_name": ev.get("tool_name"),
                "tool_use_id": call_id,
                "summary": summarize_input(ev.get("tool_name"), ev.get("tool_input")),
                "at": started["at"] if started else t,
            }
            _push_call(rec, match)
        match["status"] = status
        match["done_at"] = t
        if not ok:
            match["error"] = _clip(ev.get("error"), SUMMARY_LEN)
    elif name == "Stop":
        rec.last_assistant_message = _clip(ev.get("last_assistant_message"))
    elif name == "SubagentStop":
        if isinstance(agent_id, str) and agent_id:
            _note_subagent(rec, agent_id, ev.get("agent_type"), t, done=True)
    elif name == "PreCompact":
        rec.compactions += 1
    elif name == "SessionEnd":
        if lease_role == ROLE_UNOWNED:
            if rec.agent_pid is not None:
                _note_foreign(rec, name, t, ev, by)
                return
            # Nobody ever started it here (``claude --resume <unknown id>``): the sender
            # is the only process it ever had, so the ended session names it.
            rec.agent_pid = by
            rec.agent_pid_source = "SessionEnd"
        rec.status = "ended"
        rec.ended_at = t
        reason = ev.get("reason")
        rec.end_reason = reason if isinstance(reason, str) else "other"
        interrupt_in_flight(rec)


def _note_subagent(
    rec: SessionRecord, agent_id: str, agent_type: Any, t: float, done: bool
) -> None:
    for s in rec.subagents:
        if s.get("agent_id") == agent_id:
            s["last_at"] = t
            if done:
                s["stopped"] = True
            return
    if len(rec.subagents) < MAX_SUBAGENTS:
        rec.subagents.append(
            {
                "agent_id": agent_id,
                "agent_type": agent_type if isinstance(agent_type, str) else None,
                "first_at": t,
                "last_at": t,
                "stopped": done,
            }
        )


def wrap_event(raw: bytes, t: float, *, lease_role: str, by: int | None) -> bytes:
    """The journal payload for an event whose sender's standing was decided by the hook:
    :func:`claude_state.storage.journal.wrap`'s ``{"t", "ev"}`` plus ``"lease"`` (one of
    :data:`LEASE_ROLES`) and ``"by"`` (the sender's agent pid). Readers that know only
    ``t`` and ``ev`` (plugin dispatch, bundles) read it unchanged."""
    if lease_role not in LEASE_ROLES:
        raise InvalidInputError(f"unknown lease role {lease_role!r}")
    head = b'{"t":%.6f,"lease":"%s"' % (t, lease_role.encode("ascii"))
    if by is not None:
        head += b',"by":%d' % by
    return head + b',"ev":' + raw.strip() + b"}"


def _parse_payload(
    payload: bytes,
) -> tuple[float, dict[str, Any], str | None, int | None] | None:
    from claude_state.storage import jsonio

    try:
        doc = jsonio.loads(payload)
    except jsonio.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("ev"), dict):
        return None
    t = doc.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool):
        return None
    role = doc.get("lease")
    by = doc.get("by")
    return (
        float(t),
        doc["ev"],
        role if role in LEASE_ROLES else None,
        by if isinstance(by, int) and not isinstance(by, bool) else None,
    )


# -- the store ------------------------------------------------------------------------------


class SessionStore:
    """Session records of one state directory."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    # -- raw record I/O --

    def _read(self, sid: str) -> SessionRecord | None:
        path = self.state.session_record(sid)
        try:
            _h, doc = read_doc(path, frame.Kind.SESSION)
        except FileNotFoundError:
            return None
        try:
            return SessionRecord.from_dict(doc)
        except InvalidInputError as exc:
            raise FrameError(f"malformed session record: {exc}", path) from None

    def exists(self, sid: str) -> bool:
        """True when anything of session *sid* is on disk (record, journal or lease)."""
        return any(
            os.path.exists(p)
            for p in (
                self.state.session_record(sid),
                self.state.session_wal(sid),
                self.state.lease(sid),
            )
        )

    def load(self, sid: str) -> SessionRecord:
        """The stored record (an implicit empty one for a journal without a record yet).

        :raises NotFoundError: nothing of *sid* exists. :raises FrameError: damaged.
        """
        validate_id(sid, "session id")
        rec = self._read(sid)
        if rec is not None:
            return rec
        if self.exists(sid):
            return SessionRecord(id=sid)
        raise NotFoundError("session", sid)

    def get_or_new(self, sid: str) -> SessionRecord:
        validate_id(sid, "session id")
        return self._read(sid) or SessionRecord(id=sid)

    def lock(self, sid: str) -> FileLock:
        """The session lock (shared with journal appends and lease changes)."""
        os.makedirs(self.state.sessions, 0o700, exist_ok=True)
        return FileLock(self.state.session_lock(sid))

    def save(self, rec: SessionRecord) -> None:
        """Write *rec* atomically under the session lock."""
        with self.lock(rec.id):
            self._save_locked(rec)

    def _save_locked(self, rec: SessionRecord) -> None:
        rec.revision += 1
        write_doc(
            self.state.session_record(rec.id),
            frame.Kind.SESSION,
            rec.to_dict(),
            self.state.temp,
            rec.revision,
        )

    def ids(self) -> list[str]:
        """Every session id with a record, a journal or a lease, sorted."""
        try:
            names = os.listdir(self.state.sessions)
        except FileNotFoundError:
            return []
        out = set()
        for name in names:
            stem, dot, ext = name.rpartition(".")
            if dot and ext in ("session", "wal", "lease") and is_valid_id(stem):
                out.add(stem)
        return sorted(out)

    def list(self) -> builtins.list[SessionRecord]:
        """Every session, caught up in memory (:meth:`peek`), skipping damaged ones."""
        out = []
        for sid in self.ids():
            try:
                out.append(self.peek(sid))
            except (FrameError, NotFoundError):
                continue
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    # -- catching up with the journal --

    def _fold(self, rec: SessionRecord, on_event: OnEvent | None, log: bool = True) -> int:
        n = 0
        for seq, payload in journal.read(self.state, rec.id, rec.applied_seq):
            parsed = _parse_payload(payload)
            if parsed is None:
                if log:  # not from peek: a read-only command writes nothing
                    self._log_bad(rec.id, seq)
                rec.applied_seq = max(rec.applied_seq, seq)
                continue
            t, ev, role, by = parsed
            apply_event(rec, seq, t, ev, role, by)
            if on_event is not None:
                on_event(seq, t, ev, rec)
            n += 1
        return n

    def _log_bad(self, sid: str, seq: int) -> None:
        from claude_state.storage.safeio import append_line  # never through a symlink

        append_line(
            self.state.logs,
            "hook.log",
            (
                f"{iso_or_none(time.time())} session {sid}: journal record {seq} "
                "is not a JSON hook event; skipped\n"
            ).encode(),
        )

    def peek(self, sid: str) -> SessionRecord:
        """The record with pending journal events applied in memory; writes nothing."""
        rec = self.load(sid)
        self._fold(rec, None, log=False)
        return rec

    def catch_up(self, sid: str, on_event: OnEvent | None = None) -> SessionRecord:
        """Apply journal records after the cursor, call *on_event* for each, then save.

        Holds the session lock throughout, so *on_event* must not take it (no journal
        appends from inside the callback). Idempotent: the cursor and the record are
        one atomic write. If *on_event* raises, nothing is saved and the error passes.
        """
        validate_id(sid, "session id")
        with self.lock(sid):
            rec = self.get_or_new(sid)
            before = rec.applied_seq
            self._fold(rec, on_event)
            if rec.applied_seq != before:
                self._save_locked(rec)
            return rec

    def rebuild_damaged(self, sid: str) -> str | None:
        """Set a damaged record aside and fold the whole journal into a new one.

        The record is a fold of the journal (its cursor and what the events said), so
        the journal rebuilds it; what only the record knew (a ``recovered`` or
        ``ended`` mark, counts of events from a compacted past) is lost, which is why
        the damaged file goes to ``quarantine/`` rather than away.

        :returns: the quarantined path, or None when the record reads (or is absent).
        :raises WALError: the journal is damaged too (nothing changed then).
        """
        validate_id(sid, "session id")
        with self.lock(sid):
            try:
                self._read(sid)
                return None
            except FrameError:
                pass
            rec = SessionRecord(id=sid)
            self._fold(rec, None)  # raises before anything moves if the journal is bad
            dest = self.state.quarantine(self.state.session_record(sid))
            self._save_locked(rec)
            return dest

    def update(self, sid: str, fn: Callable[[SessionRecord], None]) -> SessionRecord:
        """Catch up, apply *fn* to the record, save: one locked read-modify-write."""
        validate_id(sid, "session id")
        with self.lock(sid):
            rec = self.get_or_new(sid)
            self._fold(rec, None)
            fn(rec)
            self._save_locked(rec)
            return rec

    # -- lifecycle helpers --

    def start(
        self, sid: str, owner: Any, *, pid_source: str | None = None, ttl: float | None = None
    ) -> tuple[SessionRecord, Any]:
        """Take the lease for *owner* (a ProcessIdentity) and note the agent in the record.

        :returns: ``(record, LeaseInfo)``. :raises LeaseHeldError: a live process holds it.
        """
        from claude_state.domain import leases

        lease = leases.acquire(
            self.state, sid, owner, ttl=leases.DEFAULT_TTL if ttl is None else ttl
        )

        def note(rec: SessionRecord) -> None:
            # Whoever holds the lease runs the session: a resumed ended or recovered
            # session is active again, so that killing its new agent reads as a crash.
            if rec.status != "active":
                rec.status = "active"
                rec.ended_at = None
                rec.end_reason = None
            rec.agent_pid = owner.pid
            rec.agent_pid_source = pid_source
            rec.host = owner.host
            if rec.started_at is None:
                rec.started_at = lease.acquired_at
            if rec.project is None:
                rec.project = os.path.dirname(os.path.dirname(self.state.root))

        return self.update(sid, note), lease

    def end(self, sid: str, reason: str = "other", *, epoch: int | None = None) -> SessionRecord:
        """Mark *sid* ended (if its journal did not already) and release its lease.

        Only the lease's owner may call this (the hook checks, see
        :func:`claude_state.adapters.claude_code.events`): *epoch*, when given, is the
        epoch the owner holds, and a lease that moved on since is not released
        (:class:`~claude_state.errors.StaleEpochError`, nothing changed).
        """
        from claude_state.domain import leases

        if epoch is not None:
            leases.check_epoch(self.state, sid, epoch)

        def mark(rec: SessionRecord) -> None:
            if rec.status != "ended":
                rec.status = "ended"
                rec.ended_at = time.time()
                rec.end_reason = reason
                interrupt_in_flight(rec)

        rec = self.update(sid, mark)
        leases.release(self.state, sid, epoch, reason=leases.REASON_ENDED)
        return rec

    def note_workflow(self, sid: str, workflow_id: str, step_id: str | None = None) -> None:
        """Record that *sid* worked on *workflow_id* (the CLI/API calls this for callers
        identified by ``CLAUDE_CODE_SESSION_ID``), so recovery finds it."""
        validate_id(workflow_id, "workflow id")
        self.update(sid, lambda rec: rec.note_workflow(workflow_id, step_id))

    # -- derived views --

    def status(self, sid: str, rec: SessionRecord | None = None) -> str:
        """``active``, ``crashed``, ``ended`` or ``recovered`` (see the module docstring)."""
        from claude_state.domain import leases

        if rec is None:
            rec = self.peek(sid)
        if rec.status != "active":
            return rec.status
        lease = leases.read(self.state, sid)
        return "crashed" if lease is not None and lease_says_crashed(lease) else "active"

    def summary(
        self, sid: str, *, detail: bool = False, rec: SessionRecord | None = None
    ) -> dict[str, Any]:
        """The contract's ``sessions list`` entry; with *detail*, the ``show`` document."""
        from claude_state.domain import leases

        if rec is None:
            rec = self.peek(sid)
        try:
            lease = leases.read(self.state, sid)
        except FrameError:
            lease = None
        status = rec.status
        if status == "active" and lease is not None and lease_says_crashed(lease):
            status = "crashed"
        pid = lease.info.owner.pid if lease is not None else rec.agent_pid
        host = lease.info.owner.host if lease is not None else rec.host
        out: dict[str, Any] = {
            "id": rec.id,
            "status": status,
            "pid": pid,
            "host": host,
            "started_at": iso_or_none(rec.started_at),
            "last_activity": iso_or_none(rec.last_activity),
            "workflows": list(rec.workflows),
        }
        if detail:
            out.update(
                {
                    "events": rec.events,
                    "tool_calls": rec.tool_calls,
                    "failed_tool_calls": rec.failed_tool_calls,
                    "cwd": rec.cwd,
                    "model": rec.model,
                    "source": rec.source,
                    "ended_at": iso_or_none(rec.ended_at),
                    "end_reason": rec.end_reason,
                    "recovered_at": iso_or_none(rec.recovered_at),
                    "last_prompt": rec.last_prompt,
                    "last_tool_calls": [_call_view(c) for c in rec.last_tool_calls],
                    "in_flight": [_call_view(c) for c in rec.in_flight.values()],
                    "active_workflow": rec.active_workflow,
                    "active_step": rec.active_step,
                    "resumes": rec.resumes,
                    "subagents": len(rec.subagents),
                    "compactions": rec.compactions,
                    "foreign_events": rec.foreign_events,
                    "last_foreign_event": None
                    if rec.last_foreign_event is None
                    else dict(
                        rec.last_foreign_event, at=iso_or_none(rec.last_foreign_event.get("at"))
                    ),
                    "lease": None
                    if lease is None
                    else {
                        "epoch": lease.epoch,
                        "held": lease.held,
                        "reason": lease.reason,
                        "heartbeat_at": iso_or_none(lease.info.heartbeat_at),
                    },
                }
            )
        return out


def _call_view(c: dict[str, Any]) -> dict[str, Any]:
    out = dict(c)
    for k in ("at", "done_at"):
        if isinstance(out.get(k), int | float):
            out[k] = iso_or_none(out[k])
    return out


def lease_says_crashed(lease: Any) -> bool:
    """Whether a lease, on its own, marks its (not ended) session as crashed.

    A held lease whose owner is gone, or a ``"broken"`` tombstone (a recoverer took the
    lease but did not finish: the next ``recover`` completes the work).
    """
    from claude_state.domain import leases
    from claude_state.domain.staleness import is_stale

    if lease.released:
        return bool(lease.reason == leases.REASON_BROKEN)
    v = leases.verdict(lease)
    return v is not None and is_stale(v)
