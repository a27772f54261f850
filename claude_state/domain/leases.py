"""Session leases: who owns a session, under which fencing epoch, and breaking dead ones.

A killed agent runs no hook, so the only way to learn that a session crashed is to hold
a lease naming its process and notice, later, that the process is gone
(``docs/ARCHITECTURE.md``, "Sessions, leases, crashes"). The lease lives in
``sessions/<sid>.lease`` as a framed document (``Kind.LEASE``) holding
:meth:`LeaseInfo.to_dict` plus three fields of its own:

* ``released`` (bool): a released lease is a *tombstone*. It is kept rather than deleted
  so the epoch only ever grows: the next acquisition takes ``epoch + 1``.
* ``reason``: why it was released: ``"ended"`` (the session said goodbye),
  ``"broken"`` (a recoverer took it from a dead owner; recovery may not be finished),
  ``"recovered"`` (recovery finished).
* ``released_at``: epoch seconds.

The crash scan (:func:`claude_state.domain.recovery.find_crashed`) reads only these
files: ended and recovered sessions are skipped from the tombstone alone.

Every read-modify-write of a lease holds the session lock (``sessions/<sid>.lock``, the
same lock the journal appends take), so two processes breaking the same stale lease
are serialised: the second re-reads, sees the epoch moved, and loses.

Epochs are fencing tokens. A lease broken by a recoverer gets ``epoch + 1``; the
recoverer stamps that epoch on the session's workflows, so a zombie that still presents
the old epoch is refused (:class:`~claude_state.errors.StaleEpochError`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from claude_state.domain.procinfo import ProcessIdentity, find_agent_pid
from claude_state.domain.staleness import (
    DEFAULT_TTL,
    HostInfo,
    HostLike,
    LeaseInfo,
    Probe,
    SystemProbe,
    Verdict,
    assess,
    is_stale,
)
from claude_state.errors import (
    FrameError,
    InvalidInputError,
    LeaseHeldError,
    StaleEpochError,
)
from claude_state.ids import is_valid_id, validate_id
from claude_state.storage import frame, safeio
from claude_state.storage.docfile import write_doc
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

__all__ = [
    "DEFAULT_TTL",
    "REASON_BROKEN",
    "REASON_ENDED",
    "REASON_RECOVERED",
    "LeaseRecord",
    "acquire",
    "break_stale",
    "caller_owner",
    "caller_session_id",
    "check_epoch",
    "heartbeat",
    "mark_recovered",
    "read",
    "parse",
    "read_path",
    "read_raw",
    "release",
    "verdict",
]

REASON_ENDED = "ended"
REASON_BROKEN = "broken"
REASON_RECOVERED = "recovered"
_REASONS = frozenset({REASON_ENDED, REASON_BROKEN, REASON_RECOVERED})

#: Test seam: called between the staleness check and the write in :func:`break_stale`.
#: The race tests widen the window with a sleep to show that the lock is what makes a
#: break atomic (with locks switched off, both breakers then "win").
_after_check: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A lease file: the lease itself and whether it has been released (a tombstone)."""

    info: LeaseInfo
    released: bool = False
    reason: str | None = None
    released_at: float | None = None

    @property
    def epoch(self) -> int:
        return self.info.epoch

    @property
    def session_id(self) -> str:
        return self.info.session_id

    @property
    def held(self) -> bool:
        return not self.released

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.info.to_dict())
        d["released"] = self.released
        d["reason"] = self.reason
        d["released_at"] = self.released_at
        return d

    @classmethod
    def from_dict(cls, data: object) -> LeaseRecord:
        """:raises InvalidInputError: for a malformed document."""
        info = LeaseInfo.from_dict(data)
        assert isinstance(data, Mapping)
        released = data.get("released", False)
        reason = data.get("reason")
        at = data.get("released_at")
        if not isinstance(released, bool):
            raise InvalidInputError("lease: 'released' must be a boolean")
        if reason is not None and reason not in _REASONS:
            raise InvalidInputError(f"lease: unknown release reason {reason!r}")
        if at is not None and (not isinstance(at, int | float) or isinstance(at, bool)):
            raise InvalidInputError("lease: 'released_at' must be a number")
        return cls(info, released, reason, None if at is None else float(at))


# -- file I/O -------------------------------------------------------------------------------


def read_path(path: str) -> LeaseRecord | None:
    """The lease at *path*, or None when absent.

    :raises FrameError: a damaged lease file (never guessed at: a damaged lease is not
        evidence that its owner died).
    """
    try:
        data = safeio.read_regular(path)  # no symlink, FIFO or device (storage/safeio)
    except FileNotFoundError:
        return None
    _header, doc = frame.decode_doc(data, frame.Kind.LEASE, path)
    try:
        return LeaseRecord.from_dict(doc)
    except InvalidInputError as exc:
        raise FrameError(f"malformed lease: {exc}", path) from None


def read_raw(path: str) -> dict[str, Any] | None:
    """The lease document at *path*, verified but not validated (the crash scan's fast
    path: a tombstone is recognised from ``released``/``reason`` without building a
    :class:`LeaseRecord`). None when absent. :raises FrameError: damaged.
    """
    try:
        fd = safeio.open_regular(path)  # no symlink, FIFO or device (storage/safeio)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    _header, doc = frame.decode_doc(data, frame.Kind.LEASE, path)
    if not isinstance(doc, dict):
        raise FrameError("malformed lease: not an object", path)
    return doc


def parse(doc: dict[str, Any], path: str | None = None) -> LeaseRecord:
    """A lease document as a :class:`LeaseRecord`. :raises FrameError: malformed."""
    try:
        return LeaseRecord.from_dict(doc)
    except InvalidInputError as exc:
        raise FrameError(f"malformed lease: {exc}", path) from None


def read(state: StateDir, session_id: str) -> LeaseRecord | None:
    """The lease of *session_id* (held or tombstone), or None if it never had one."""
    return read_path(state.lease(session_id))


def _write(state: StateDir, rec: LeaseRecord) -> None:
    write_doc(state.lease(rec.session_id), frame.Kind.LEASE, rec.to_dict(), state.temp, rec.epoch)


def _lock(state: StateDir, session_id: str) -> FileLock:
    os.makedirs(state.sessions, 0o700, exist_ok=True)
    return FileLock(state.session_lock(session_id))


def verdict(
    rec: LeaseRecord,
    *,
    here: HostLike | None = None,
    now: float | None = None,
    probe: Probe | None = None,
) -> Verdict | None:
    """The staleness verdict of a held lease; None for a tombstone (nobody holds it)."""
    if rec.released:
        return None
    return assess(rec.info, here=here, now=now, probe=probe or _PROBE)


_PROBE = SystemProbe()


# -- operations -----------------------------------------------------------------------------


def acquire(
    state: StateDir,
    session_id: str,
    owner: ProcessIdentity,
    *,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
    probe: Probe | None = None,
) -> LeaseInfo:
    """Take the lease of *session_id* for *owner* and return it.

    * no lease, or a tombstone: a new lease with ``epoch + 1`` (1 for the first);
    * held by *owner* itself (same pid, start time, boot, host): refreshed, same epoch,
      so repeated ``SessionStart`` events of one agent process (``/clear``, compaction)
      do not fence the agent off its own workflows;
    * held by another owner that is gone (stale verdict): taken over with ``epoch + 1``
      (the resumed session runs in a new process);
    * held by another owner that is alive, or whose fate is unknown:
      :class:`LeaseHeldError`. A live owner is never declared dead.
    """
    validate_id(session_id, "session id")
    t = time.time() if now is None else now
    with _lock(state, session_id):
        cur = read(state, session_id)
        if cur is None:
            epoch = 1
        elif cur.released:
            epoch = cur.epoch + 1
        elif cur.info.owner == owner:
            info = replace(cur.info, heartbeat_at=t, ttl=ttl)
            _write(state, LeaseRecord(info))
            return info
        else:
            v = verdict(cur, now=t, probe=probe)
            if v is None or not is_stale(v):
                raise LeaseHeldError(session_id, cur.info.owner.pid, cur.info.owner.host)
            epoch = cur.epoch + 1
        info = LeaseInfo(session_id, owner, epoch, heartbeat_at=t, acquired_at=t, ttl=ttl)
        _write(state, LeaseRecord(info))
        return info


def heartbeat(
    state: StateDir, session_id: str, epoch: int, *, now: float | None = None
) -> LeaseInfo:
    """Refresh the heartbeat of the lease held under *epoch*.

    :raises StaleEpochError: the lease was released, broken or re-acquired since.
    """
    with _lock(state, session_id):
        cur = read(state, session_id)
        _require_epoch(session_id, cur, epoch)
        assert cur is not None
        info = cur.info.with_heartbeat(now)
        _write(state, LeaseRecord(info))
        return info


def _require_epoch(session_id: str, cur: LeaseRecord | None, epoch: int) -> None:
    if cur is None:
        raise StaleEpochError(f"session {session_id} (no lease)", epoch, 0)
    if cur.released or cur.epoch != epoch:
        current = cur.epoch + (1 if cur.released and cur.epoch == epoch else 0)
        raise StaleEpochError(f"session {session_id}", epoch, current)


def release(
    state: StateDir, session_id: str, epoch: int | None = None, *, reason: str = REASON_ENDED
) -> bool:
    """Release the lease (leave a tombstone). Idempotent.

    :param epoch: the epoch the caller holds; None releases whatever is held (the session
        itself ending through its own hook). A caller with an older epoch is refused.
    :returns: True when a held lease was released now.
    :raises StaleEpochError: *epoch* is not the current one.
    """
    if reason not in _REASONS:
        raise InvalidInputError(f"unknown release reason {reason!r}")
    with _lock(state, session_id):
        cur = read(state, session_id)
        if cur is None:
            return False
        if epoch is not None and epoch != cur.epoch:
            raise StaleEpochError(f"session {session_id}", epoch, cur.epoch)
        if cur.released:
            return False
        _write(state, LeaseRecord(cur.info, True, reason, time.time()))
        return True


def break_stale(
    state: StateDir,
    session_id: str,
    expected_epoch: int,
    *,
    probe: Probe | None = None,
    here: HostLike | None = None,
    now: float | None = None,
) -> bool:
    """Atomically take a stale lease away from its dead owner.

    Under the session lock: re-read the lease; it must still be held, still carry
    *expected_epoch* and still be stale. Then write a tombstone (reason ``"broken"``)
    with ``epoch + 1``: the new fencing epoch the recoverer uses. Of two concurrent
    breakers exactly one returns True; the other sees the epoch moved.
    """
    with _lock(state, session_id):
        cur = read(state, session_id)
        if cur is None or cur.released or cur.epoch != expected_epoch:
            return False
        v = verdict(cur, here=here or HostInfo.current(), now=now, probe=probe)
        if v is None or not is_stale(v):
            return False
        if _after_check is not None:
            _after_check()
        info = replace(cur.info, epoch=cur.epoch + 1)
        _write(state, LeaseRecord(info, True, REASON_BROKEN, time.time()))
        return True


def mark_recovered(state: StateDir, session_id: str) -> bool:
    """Turn a ``"broken"`` tombstone into ``"recovered"`` (recovery finished)."""
    with _lock(state, session_id):
        cur = read(state, session_id)
        if cur is None or not cur.released or cur.reason == REASON_RECOVERED:
            return False
        _write(state, replace(cur, reason=REASON_RECOVERED, released_at=time.time()))
        return True


def check_epoch(state: StateDir, session_id: str, epoch: int) -> None:
    """Fencing for writes made on behalf of a session: refuse an outdated *epoch*.

    :raises StaleEpochError: the lease moved on (broken by a recoverer, or re-acquired
        by a resumed session) since *epoch* was handed out.
    """
    cur = read(state, session_id)
    if cur is not None and epoch < cur.epoch:
        raise StaleEpochError(f"session {session_id}", epoch, cur.epoch)


# -- who is calling -------------------------------------------------------------------------


def caller_session_id(env: Mapping[str, str] | None = None) -> str | None:
    """The Claude Code session a CLI or API call is made on behalf of, if any.

    Claude Code exports ``CLAUDE_CODE_SESSION_ID`` to the commands its agent runs; an
    invalid value is ignored rather than trusted as a path component.
    """
    value = (os.environ if env is None else env).get("CLAUDE_CODE_SESSION_ID", "").strip()
    return value if is_valid_id(value) else None


def caller_owner(env: Mapping[str, str] | None = None) -> tuple[ProcessIdentity, str]:
    """The identity of the agent process this call runs under, and how it was found.

    ``$CLAUDE_PID`` when set and alive, else the agent found by walking up the process
    ancestry (:func:`claude_state.domain.procinfo.find_agent_pid`).
    """
    pid, source = find_agent_pid(env)
    return ProcessIdentity.current(pid), source
