"""Crash detection and recovery of sessions.

A **crashed session** is a stale lease on a session that never ended (a killed agent
runs no hook). :func:`find_crashed` finds them from the lease files alone (the scan is
meant to run on every ``SessionStart`` and ``status``: it must stay in milliseconds for
thousands of sessions); :func:`plan` says what the crash left (strategy, estimated data
loss, the workflows it was driving with their step in flight, its last activity);
:func:`apply` makes that state ready to resume:

1. catch the session record up with its journal (every acknowledged event is there);
2. break the stale lease atomically (:func:`leases.break_stale`): the tombstone carries
   ``epoch + 1``, the new fencing epoch;
3. stamp that epoch on each workflow the session owned (``op_owner``), so a zombie
   writer still presenting the old epoch is refused, and move its running steps back to
   pending (``op_interrupt``) so they can be retried;
4. record a checkpoint of type ``recovery`` per workflow (once per epoch);
5. mark the session ``recovered`` and the tombstone ``recovered``.

Each step is idempotent and the whole runs under a per-session recovery lock
(``sessions/<sid>.recovery.lock``, separate from the session lock so hook appends are
never blocked by a recovery). A recovery killed half-way leaves a ``broken`` tombstone
on a session that is not ``recovered``: the session still reads as crashed, and the next
``recover`` finishes the job. Applying a finished plan again changes nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from claude_state.domain import damage, leases
from claude_state.domain.sessions import (
    OnEvent,
    SessionRecord,
    SessionStore,
    interrupt_in_flight,
    iso_or_none,
)
from claude_state.domain.staleness import HostInfo, is_stale
from claude_state.errors import (
    ClaudeStateError,
    IntegrityError,
    LeaseHeldError,
    NotFoundError,
)
from claude_state.ids import is_valid_id, validate_id
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

__all__ = [
    "STRATEGY_NOTHING",
    "STRATEGY_RESTORE",
    "STRATEGY_WAL",
    "RecoveryPlan",
    "apply",
    "find_crashed",
    "kill_orphans",
    "plan",
    "recover_for_resume",
    "unfinished_workflows",
]

STRATEGY_WAL = "resume_from_wal"
STRATEGY_RESTORE = "restore_checkpoint"
STRATEGY_NOTHING = "nothing_to_recover"
_OPEN = frozenset({"idle", "running", "paused", "failed"})


@dataclass
class RecoveryPlan:
    """What a crash left and what recovering it does (contract keys first)."""

    session_id: str
    strategy: str
    estimated_data_loss: str
    recoverable_workflows: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = False
    status: str = "crashed"
    last_activity: dict[str, Any] = field(default_factory=dict)
    in_flight_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    lease_epoch: int = 0
    changes: list[str] = field(default_factory=list)
    #: Processes the dead agent left running (:func:`procinfo.find_orphans`): pid,
    #: command, started_at, age_seconds, start_token, evidence; and how they were found
    #: (or why none can be named on this platform).
    orphans: list[dict[str, Any]] = field(default_factory=list)
    orphans_note: str = ""
    #: ``recover --kill-orphans``: ``{"pid", "result"}`` per orphan ended.
    killed_orphans: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "strategy": self.strategy,
            "estimated_data_loss": self.estimated_data_loss,
            "recoverable_workflows": [dict(w) for w in self.recoverable_workflows],
            "applied": self.applied,
            "status": self.status,
            "last_activity": dict(self.last_activity),
            "in_flight_tool_calls": [dict(c) for c in self.in_flight_tool_calls],
            "lease_epoch": self.lease_epoch,
            "changes": list(self.changes),
            "orphans": [dict(o) for o in self.orphans],
            "orphans_note": self.orphans_note,
            "killed_orphans": [dict(k) for k in self.killed_orphans],
        }


# -- detection --------------------------------------------------------------------------------


def find_crashed(state: StateDir) -> list[str]:
    """Ids of crashed sessions, sorted.

    Reads lease files only: a tombstone (``ended``/``recovered``) is skipped from the
    file alone, a held lease is assessed (one ``kill(pid, 0)`` and one ``/proc`` read).
    Only the few stale candidates have their record and journal tail looked at, to
    exclude sessions whose ``SessionEnd`` reached the journal before the lease was
    released. Damaged leases are skipped (``verify`` reports them): a damaged lease is
    no evidence that its owner died.
    """
    try:
        entries = os.scandir(state.sessions)
    except FileNotFoundError:
        return []
    here = HostInfo.current()
    candidates = []
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".lease"):
                continue
            sid = name[:-6]
            try:
                doc = leases.read_raw(entry.path)
                if doc is None:
                    continue
                if doc.get("released") is True:
                    if doc.get("reason") == leases.REASON_BROKEN:
                        candidates.append(sid)
                    continue
                lease = leases.parse(doc, entry.path)
            except IntegrityError:
                # A damaged lease is no evidence of a live owner (domain/damage.py).
                if is_valid_id(sid) and damage.lease_possibly_crashed(state, sid):
                    candidates.append(sid)
                continue
            v = leases.verdict(lease, here=here)
            if v is not None and is_stale(v):
                candidates.append(sid)
    # A quarantined lease is no more evidence of a live owner than a damaged one.
    q = damage.quarantined_lease_sessions(state)
    candidates += [sid for sid in q if damage.lease_possibly_crashed(state, sid)]
    if not candidates:
        return []
    store = SessionStore(state)
    out = []
    for sid in candidates:
        if not is_valid_id(sid):  # checked late: only candidates ever become paths
            continue
        try:
            if store.peek(sid).status == "active":
                out.append(sid)
        except (IntegrityError, NotFoundError):
            # a lease with a damaged record or journal: still a crash to report (and
            # one damaged session must not end the scan for the others)
            out.append(sid)
    return sorted(out)


# -- planning ---------------------------------------------------------------------------------


def _workflow_store(state: StateDir) -> Any:
    from claude_state.domain.store import WorkflowStore

    return WorkflowStore(state)


def _checkpoint_store(state: StateDir, workflows: Any) -> Any | None:
    """The checkpoint store, or None while that module is not available."""
    try:
        from claude_state.domain.checkpoints import CheckpointStore
    except ImportError:  # pragma: no cover - depends on the build
        return None
    return CheckpointStore(state, workflows=workflows)


def _last_checkpoint(cps: Any | None, wid: str) -> dict[str, Any] | None:
    if cps is None:
        return None
    try:
        found = cps.list(wid)
    except (ClaudeStateError, OSError):
        return None
    if not found:
        return None
    last = max(found, key=lambda c: str(c.get("created_at", "")))
    return {"id": last.get("id"), "type": last.get("type"), "created_at": last.get("created_at")}


def _session_workflow_ids(state: StateDir, rec: SessionRecord, wfs: Any) -> list[str]:
    """The workflows *rec* worked on: noted in its record, or owned by it."""
    ids = [w for w in rec.workflows if is_valid_id(w)]
    try:
        for wf in wfs.list():
            if wf.owner and wf.owner.get("session_id") == rec.id and wf.id not in ids:
                ids.append(wf.id)
    except ClaudeStateError:
        pass
    return ids


def _workflow_entry(wfs: Any, cps: Any | None, wid: str, sid: str) -> dict[str, Any] | None:
    """A ``recoverable_workflows`` entry, or None when *wid* has nothing unfinished."""
    try:
        wf = wfs.load(wid)
    except NotFoundError:
        return None
    except IntegrityError as exc:
        cp = _last_checkpoint(cps, wid)
        return {
            "id": wid,
            "name": None,
            "status": "damaged",
            "progress": None,
            "step_in_flight": None,
            "steps_in_flight": [],
            "last_checkpoint": cp,
            "damaged": str(exc),
            "owned": True,
        }
    if wf.status not in _OPEN:
        return None
    running = [s.id for s in wf.steps if s.status == "running"]
    owner = wf.owner or {}
    return {
        "id": wf.id,
        "name": wf.name,
        "status": wf.status,
        "progress": wf.progress,
        "step_in_flight": running[0] if running else None,
        "steps_in_flight": running,
        "next_step": wf.current_step,
        "last_checkpoint": _last_checkpoint(cps, wid),
        # A workflow taken over by another session since is reported, not touched.
        "owned": owner.get("session_id") in (None, sid),
    }


def unfinished_workflows(
    state: StateDir, sid: str, rec: SessionRecord | None = None
) -> list[dict[str, Any]]:
    """Workflows session *sid* worked on that are not completed or cancelled.

    Used for the crashed sessions' plans and for a session being resumed (its
    ``SessionStart`` context names them).
    """
    if rec is None:
        rec = SessionStore(state).peek(sid)
    wfs = _workflow_store(state)
    cps = _checkpoint_store(state, wfs)
    out = []
    for wid in _session_workflow_ids(state, rec, wfs):
        entry = _workflow_entry(wfs, cps, wid, sid)
        if entry is not None:
            out.append(entry)
    return out


def _last_activity(rec: SessionRecord) -> dict[str, Any]:
    return {
        "at": iso_or_none(rec.last_activity),
        "last_prompt": rec.last_prompt,
        "last_tool_calls": [
            {
                "tool_name": c.get("tool_name"),
                "tool_use_id": c.get("tool_use_id"),
                "summary": c.get("summary"),
                "status": c.get("status"),
                "at": iso_or_none(c.get("at")),
            }
            for c in rec.last_tool_calls
        ],
    }


def _data_loss(rec: SessionRecord, workflows: list[dict[str, Any]]) -> str:
    parts = [f"none of the {rec.events} acknowledged events: every one is in the journal"]
    if rec.in_flight:
        calls = ", ".join(
            f"{c.get('tool_name')} {c.get('tool_use_id')}" for c in rec.in_flight.values()
        )
        parts.append(
            f"{len(rec.in_flight)} tool call(s) were in flight with no PostToolUse "
            f"(their results were not recorded; their effects may be partial): {calls}"
        )
    running = [f"{w['id']}/{s}" for w in workflows for s in w.get("steps_in_flight", [])]
    if running:
        parts.append(
            f"step(s) in flight lose their partial work and will be retried: {', '.join(running)}"
        )
    for w in workflows:
        if w.get("status") == "damaged":
            cp = w.get("last_checkpoint")
            since = (
                f"checkpoint {cp['id']} ({cp['created_at']})" if cp else "nothing (no checkpoint)"
            )
            parts.append(f"workflow {w['id']} is damaged: changes after {since} are lost")
    return "; ".join(parts)


def _orphans(sid: str, lease: leases.LeaseRecord | None) -> tuple[list[dict[str, Any]], str]:
    """What the dead agent named by *lease* left running (see
    :func:`claude_state.domain.procinfo.find_orphans` for the evidence used)."""
    from claude_state.clock import to_iso
    from claude_state.domain.procinfo import find_orphans

    try:
        found, note = find_orphans(sid, lease.info.owner if lease is not None else None)
    except OSError as exc:
        return [], f"processes left running are unknown: {exc}"
    out = []
    for o in found:
        o = dict(o)
        started = o.get("started_at")
        o["started_at"] = to_iso(started) if isinstance(started, float) else None
        out.append(o)
    return out, note


def plan(state: StateDir, sid: str) -> RecoveryPlan:
    """The recovery plan of session *sid* (writes nothing).

    A session that is not crashed gets strategy ``nothing_to_recover``; ``applied`` is
    true when it was already recovered.

    :raises NotFoundError: unknown session. :raises InvalidIdError: bad id.
    """
    validate_id(sid, "session id")
    damaged = _damaged_plan(state, sid)  # a file of the session does not read
    if damaged is not None:
        return damaged
    store = SessionStore(state)
    rec = store.peek(sid)
    status = store.status(sid, rec)
    lease = leases.read(state, sid)
    epoch = lease.epoch if lease is not None else 0
    if status != "crashed":
        why = {
            "recovered": "already recovered",
            "ended": f"the session ended ({rec.end_reason or 'no reason given'})",
            "active": "the session is active: its owner is alive",
        }[status]
        done = RecoveryPlan(
            sid,
            STRATEGY_NOTHING,
            f"none: {why}",
            applied=status == "recovered",
            status=status,
            last_activity=_last_activity(rec),
            lease_epoch=epoch,
        )
        if status == "recovered" and lease is not None and lease.released:
            # Recovered, not resumed since: the dead agent's processes may still run.
            done.orphans, done.orphans_note = _orphans(sid, lease)
        return done
    workflows = unfinished_workflows(state, sid, rec)
    if any(w["status"] == "damaged" for w in workflows):
        strategy = STRATEGY_RESTORE
    elif workflows or rec.in_flight:
        strategy = STRATEGY_WAL
    else:
        strategy = STRATEGY_NOTHING
    orphans, note = _orphans(sid, lease)
    return RecoveryPlan(
        session_id=sid,
        strategy=strategy,
        estimated_data_loss=_data_loss(rec, workflows),
        recoverable_workflows=workflows,
        status=status,
        last_activity=_last_activity(rec),
        in_flight_tool_calls=[dict(c, at=iso_or_none(c.get("at"))) for c in rec.in_flight.values()],
        lease_epoch=epoch,
        orphans=orphans,
        orphans_note=note,
    )


# -- applying ---------------------------------------------------------------------------------


def _recovery_lock(state: StateDir, sid: str) -> FileLock:
    return FileLock(
        os.path.join(state.sessions, validate_id(sid, "session id") + ".recovery.lock"),
        timeout=60.0,
    )


def apply(
    state: StateDir, the_plan: RecoveryPlan, *, on_event: OnEvent | None = None
) -> RecoveryPlan:
    """Apply a recovery plan (see the module docstring); idempotent.

    The plan is recomputed under the recovery lock, so a stale plan (another recoverer
    finished first, or the session was resumed) is never applied blindly.

    :returns: the plan as applied, ``applied=True``; ``changes`` lists what this call
        changed (empty when someone else had already done it).
    :raises LeaseHeldError: the session's owner is alive (it was resumed meanwhile).
    """
    from claude_state.clock import now_iso
    from claude_state.domain import ops

    sid = the_plan.session_id
    state.ensure(sweep=False)
    store = SessionStore(state)
    with _recovery_lock(state, sid):
        # A damaged record is rebuilt from the journal it folds (the damaged copy kept
        # in quarantine/): a crash must stay recoverable whatever else broke.
        rebuilt = store.rebuild_damaged(sid)
        store.catch_up(sid, on_event)
        fresh = plan(state, sid)
        if fresh.status != "crashed":
            if fresh.status == "active":
                damage.refuse_live(state, sid)  # a damaged lease: named by the agent pid
                lease = leases.read(state, sid)
                pid = lease.info.owner.pid if lease else None
                raise LeaseHeldError(sid, pid, lease.info.owner.host if lease else "")
            fresh.applied = True
            return fresh
        changes: list[str] = damage.replace_damaged_lease(state, sid)
        if rebuilt is not None:
            changes.append(f"rebuilt the damaged session record from its journal ({rebuilt})")
        lease = leases.read(state, sid)
        assert lease is not None  # crashed implies a lease
        if lease.held:
            if not leases.break_stale(state, sid, lease.epoch):
                lease = leases.read(state, sid)
                if lease is None or lease.held or lease.reason != leases.REASON_BROKEN:
                    raise LeaseHeldError(sid, lease.info.owner.pid if lease else None)
            else:
                changes.append(
                    f"broke the stale lease of pid {lease.info.owner.pid} "
                    f"(epoch {lease.epoch} -> {lease.epoch + 1})"
                )
            lease = leases.read(state, sid)
            assert lease is not None
        epoch = lease.epoch
        at = now_iso()
        wfs = _workflow_store(state)
        cps = _checkpoint_store(state, wfs)
        for w in fresh.recoverable_workflows:
            changes.extend(_recover_workflow(wfs, cps, w, sid, epoch, at, ops))

        def mark(rec: SessionRecord) -> None:
            interrupt_in_flight(rec)
            rec.status = "recovered"
            rec.recovered_at = time.time()

        store.update(sid, mark)
        changes.append(f"marked session {sid} recovered")
        leases.mark_recovered(state, sid)
        done = plan(state, sid)
        result = RecoveryPlan(
            session_id=sid,
            strategy=fresh.strategy,
            estimated_data_loss=fresh.estimated_data_loss,
            recoverable_workflows=[_refresh(wfs, cps, w, sid) for w in fresh.recoverable_workflows],
            applied=True,
            status=done.status,
            last_activity=fresh.last_activity,
            in_flight_tool_calls=fresh.in_flight_tool_calls,
            lease_epoch=epoch,
            changes=changes,
            orphans=fresh.orphans,
            orphans_note=fresh.orphans_note,
        )
        return result


def _refresh(wfs: Any, cps: Any | None, w: dict[str, Any], sid: str) -> dict[str, Any]:
    """The entry after recovery; keeps which step was in flight at the crash."""
    now = _workflow_entry(wfs, cps, w["id"], sid) or dict(w)
    now["interrupted_steps"] = list(w.get("steps_in_flight", []))
    now["step_in_flight"] = w.get("step_in_flight")
    return now


def _recover_workflow(
    wfs: Any, cps: Any | None, w: dict[str, Any], sid: str, epoch: int, at: str, ops: Any
) -> list[str]:
    wid = w["id"]
    changes: list[str] = []
    if not w.get("owned", True):
        return [f"left workflow {wid} alone: another session owns it now"]
    if w.get("status") == "damaged":
        cp = w.get("last_checkpoint")
        if cps is None or not cp:
            return [f"workflow {wid} is damaged and has no checkpoint: left for verify --repair"]
        cps.restore(cp["id"])
        changes.append(f"restored workflow {wid} from checkpoint {cp['id']}")
    wf = wfs.load(wid)
    owner = wf.owner or {}
    if owner.get("session_id") != sid or int(owner.get("epoch", -1)) < epoch:
        if owner.get("session_id") not in (None, sid):
            return [f"left workflow {wid} alone: another session owns it now"]
        wf = wfs.apply(wid, ops.op_owner(sid, epoch, at), epoch=epoch)
        changes.append(f"fenced workflow {wid} at epoch {epoch}")
    running = [s.id for s in wf.steps if s.status == "running"]
    if running:
        # Interrupt is its own op: allowed on a paused workflow too.
        wfs.apply(wid, ops.op_interrupt(running, at, f"session {sid} crashed"), epoch=epoch)
        changes.append(f"interrupted step(s) {', '.join(running)} of {wid}: ready to retry")
    if cps is not None:
        tag = f"recovery-{sid}-e{epoch}"
        try:
            existing = [c for c in cps.list(wid) if tag in (c.get("tags") or [])]
        except ClaudeStateError:
            existing = []
        if not existing:
            cp = cps.create(
                wid,
                type="recovery",
                tags=("recovery", tag),
                description=f"recovery of crashed session {sid} (epoch {epoch})",
            )
            changes.append(f"checkpoint {cp.get('id')} (recovery) of {wid}")
    return changes


def recover_for_resume(
    state: StateDir, sid: str, *, on_event: OnEvent | None = None
) -> RecoveryPlan | None:
    """Before a crashed session is resumed in a new process: recover it first.

    The hook adapter calls this on ``SessionStart`` (source ``resume``) before
    :meth:`SessionStore.start` takes the lease, so the resumed agent finds its
    interrupted steps ready to retry. :returns: the applied plan, or None if the session
    was not crashed.
    """
    try:
        store = SessionStore(state)
        if store.status(sid) != "crashed":
            return None
    except NotFoundError:
        return None
    return apply(state, plan(state, sid), on_event=on_event)


def kill_orphans(the_plan: RecoveryPlan, *, grace: float = 2.0) -> RecoveryPlan:
    """End the processes *the_plan* names as left running by the dead agent
    (``recover --kill-orphans``) and record what happened in ``killed_orphans``.

    Only those named by evidence (:func:`claude_state.domain.procinfo.find_orphans`),
    and only while each pid still has the start time it had when named.
    """
    from claude_state.domain.procinfo import kill_orphans as kill

    if the_plan.orphans:
        the_plan.killed_orphans = kill(the_plan.orphans, grace=grace)
        for k in the_plan.killed_orphans:
            the_plan.changes.append(f"ended orphaned process {k['pid']}: {k['result']}")
    return the_plan


def _damaged_plan(state: StateDir, sid: str) -> RecoveryPlan | None:
    """The recovery plan of *sid* when its files are damaged (None when they read):
    the damage is named in ``estimated_data_loss``; workflows are found from what
    still reads (the record, or the workflows' owners); :mod:`~claude_state.domain.damage` says
    what is damaged and how the session stands."""
    d = damage.classify(state, sid)
    if d is None:
        return None
    rec = d.record or SessionRecord(id=sid)
    named = f"damaged files: {d.describe()}"
    epoch = d.lease.epoch if d.lease is not None else 0
    if d.status != "crashed":
        return RecoveryPlan(
            sid,
            STRATEGY_NOTHING,
            f"none: the session is {d.status} ({named})",
            applied=d.status == "recovered",
            status=d.status,
            last_activity=_last_activity(rec),
            lease_epoch=epoch,
        )
    workflows = unfinished_workflows(state, sid, rec)
    if any(w["status"] == "damaged" for w in workflows):
        strategy = STRATEGY_RESTORE
    else:
        strategy = STRATEGY_WAL  # at least the damaged lease is set right
    loss = _data_loss(rec, workflows) if d.record is not None else "unknown"
    return RecoveryPlan(
        session_id=sid,
        strategy=strategy,
        estimated_data_loss=f"{named}; {loss}",
        recoverable_workflows=workflows,
        status="crashed",
        last_activity=_last_activity(rec),
        in_flight_tool_calls=[dict(c) for c in rec.in_flight.values()],
        lease_epoch=epoch,
    )
