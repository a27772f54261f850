"""Sessions whose files are damaged: named, and treated as possibly crashed.

A session is judged from three files: its lease (who owns it, alive or not), its record
and its journal. When one of them cannot be read, the usual judgement fails, and it
used to fail quietly: ``status`` skipped the session, the crash scan took a damaged
lease for "not crashed", ``sessions list`` showed ``active``. One flipped bit could
hide a crash. Here such a session is classified from whatever still reads:

* a readable record or tombstone that says the session ended or was recovered wins;
* a readable held lease is judged as usual (its owner alive: ``active``, gone:
  ``crashed``);
* otherwise nothing proves an owner is alive: a damaged lease is no evidence of one.
  Only the agent pid the record noted, still running, keeps the session ``active``
  (conservative: a live agent is never fenced off on a guess); else it is ``crashed``,
  so ``status`` counts it, ``recover`` plans it and ``SessionStart`` announces it, the
  damage named each time.

Recovering a session whose lease is damaged first replaces the lease by a ``broken``
tombstone whose epoch is past every epoch known for the session (the damaged file's
frame header, which carries the epoch as its generation, and its workflows' owner
epochs), so fencing still holds; the usual recovery then proceeds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from claude_state.errors import IntegrityError, LeaseHeldError, NotFoundError
from claude_state.storage.layout import StateDir

if TYPE_CHECKING:
    from claude_state.domain.leases import LeaseRecord
    from claude_state.domain.sessions import SessionRecord

__all__ = [
    "SessionDamage",
    "classify",
    "damaged_sessions",
    "lease_possibly_crashed",
    "refuse_live",
    "replace_damaged_lease",
]


@dataclass
class SessionDamage:
    """What is damaged in one session, and the status judged from what still reads."""

    session_id: str
    status: str
    problems: list[dict[str, str]] = field(default_factory=list)
    record: SessionRecord | None = None
    lease: LeaseRecord | None = None
    lease_damaged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "problems": [dict(p) for p in self.problems],
        }

    def describe(self) -> str:
        return "; ".join(f"{p['kind']}: {p['detail']}" for p in self.problems)


def classify(state: StateDir, sid: str) -> SessionDamage | None:
    """The damage in session *sid*'s files, or None when they all read."""
    from claude_state.domain import leases
    from claude_state.domain.sessions import SessionStore

    problems: list[dict[str, str]] = []
    lease = None
    lease_damaged = False
    try:
        lease = leases.read(state, sid)
    except IntegrityError as exc:
        lease_damaged = True
        problems.append({"path": state.lease(sid), "kind": "damaged_lease", "detail": _detail(exc)})
    else:
        q = quarantined_lease(state, sid) if lease is None else None
        if q is not None:
            # ``verify --repair`` moved a damaged lease away: its absence is no more
            # evidence of a live owner than the damage was.
            lease_damaged = True
            problems.append(
                {
                    "path": q,
                    "kind": "quarantined_lease",
                    "detail": "the lease was damaged and moved to quarantine",
                }
            )
    record = None
    try:
        record = SessionStore(state).peek(sid)
    except NotFoundError:
        pass
    except IntegrityError as exc:
        path = exc.path or state.session_record(sid)
        kind = "damaged_journal" if path.endswith(".wal") else "damaged_record"
        problems.append({"path": path, "kind": kind, "detail": _detail(exc)})
    if not problems:
        return None
    return SessionDamage(
        sid, _judge(record, lease), problems, record, lease, lease_damaged=lease_damaged
    )


def quarantined_lease(state: StateDir, sid: str) -> str | None:
    """Where ``verify --repair`` put *sid*'s damaged lease, if it did (else None)."""
    rel = os.path.relpath(state.lease(sid), state.root).replace(os.sep, "__")
    path = os.path.join(state.root, "quarantine", rel)
    return path if os.path.exists(path) else None


def quarantined_lease_sessions(state: StateDir) -> list[str]:
    """Sessions whose lease was quarantined and not replaced since (for the crash scan)."""
    from claude_state.ids import is_valid_id

    prefix = os.path.relpath(state.sessions, state.root).replace(os.sep, "__") + "__"
    try:
        names = os.listdir(os.path.join(state.root, "quarantine"))
    except OSError:
        return []
    out = []
    for name in names:
        sid = name[len(prefix) : -len(".lease")]
        if (
            name.startswith(prefix)
            and name.endswith(".lease")
            and is_valid_id(sid)
            and not os.path.exists(state.lease(sid))
        ):
            out.append(sid)
    return sorted(out)


def _detail(exc: IntegrityError) -> str:
    text = str(exc)
    prefix = f"{exc.path}: " if exc.path else ""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def _judge(record: SessionRecord | None, lease: LeaseRecord | None) -> str:
    from claude_state.domain import leases
    from claude_state.domain.procinfo import pid_alive
    from claude_state.domain.sessions import lease_says_crashed

    if record is not None and record.status in ("ended", "recovered"):
        return record.status
    if lease is not None:
        if lease.released and lease.reason == leases.REASON_ENDED:
            return "ended"
        if lease.released and lease.reason == leases.REASON_RECOVERED:
            return "recovered"
        return "crashed" if lease_says_crashed(lease) else "active"
    pid = record.agent_pid if record is not None else None
    if isinstance(pid, int) and pid_alive(pid):
        return "active"
    return "crashed"


def lease_possibly_crashed(state: StateDir, sid: str) -> bool:
    """For the crash scan: whether *sid*, whose lease did not read, counts as crashed."""
    d = classify(state, sid)
    return d is not None and d.status == "crashed"


def refuse_live(state: StateDir, sid: str) -> None:
    """For recovery of a session judged active despite a damaged lease: refuse as for
    any live owner, naming the agent pid the record noted.

    :raises LeaseHeldError: the lease is damaged (nothing happens when it reads).
    """
    d = classify(state, sid)
    if d is not None and d.lease_damaged:
        pid = d.record.agent_pid if d.record is not None else None
        raise LeaseHeldError(sid, pid, "this host (its lease is damaged)")


def replace_damaged_lease(state: StateDir, sid: str) -> list[str]:
    """Before recovering *sid*: a damaged lease becomes a ``broken`` tombstone.

    :returns: the change made (empty when the lease reads).
    :raises LeaseHeldError: the agent pid the record noted still runs.
    """
    from claude_state.domain import leases
    from claude_state.domain.procinfo import ProcessIdentity, pid_alive
    from claude_state.domain.staleness import LeaseInfo
    from claude_state.storage import frame

    with leases._lock(state, sid):
        try:
            current = leases.read(state, sid)
        except IntegrityError as exc:
            cause = _detail(exc)
            damaged_path = state.lease(sid)
        else:
            q = quarantined_lease(state, sid) if current is None else None
            if q is None:
                return []
            cause, damaged_path = "moved to quarantine", q
        d = classify(state, sid)
        rec = d.record if d is not None else None
        pid = rec.agent_pid if rec is not None else None
        if isinstance(pid, int) and pid_alive(pid):
            raise LeaseHeldError(sid, pid, "this host (its lease is damaged)")
        known = [0]
        try:
            with open(damaged_path, "rb") as f:
                known.append(frame.decode_header(f.read(frame.HEADER_SIZE)).generation)
        except (OSError, IntegrityError):
            pass  # the header is damaged too
        known.extend(_owner_epochs(state, sid))
        epoch = max(known) + 1
        owner = ProcessIdentity(
            pid=pid if isinstance(pid, int) and pid > 0 else 1,
            start_time=None,
            boot_id="",
            host=(rec.host if rec is not None and rec.host else "") or "unknown",
        )
        now = time.time()
        info = LeaseInfo(sid, owner, epoch, heartbeat_at=now, acquired_at=now)
        leases._write(state, leases.LeaseRecord(info, True, leases.REASON_BROKEN, now))
    return [f"replaced the damaged lease ({cause}) by a broken tombstone (epoch {epoch})"]


def _owner_epochs(state: StateDir, sid: str) -> list[int]:
    from claude_state.domain.store import WorkflowStore

    store = WorkflowStore(state)
    out = []
    try:
        for wf in store.list():
            owner = wf.owner or {}
            if owner.get("session_id") == sid and isinstance(owner.get("epoch"), int):
                out.append(int(owner["epoch"]))
    finally:
        store.close()
    return out


def damaged_sessions(state: StateDir) -> list[SessionDamage]:
    """Every session with a damaged file (for ``status`` and ``sessions list``)."""
    from claude_state.domain.sessions import SessionStore

    out: list[SessionDamage] = []
    if not os.path.isdir(state.sessions):
        return out
    for sid in SessionStore(state).ids():
        d = classify(state, sid)
        if d is not None:
            out.append(d)
    return out
