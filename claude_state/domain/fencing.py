"""Fencing for writes made on behalf of a session, and old leases put back.

A recovery breaks a crashed session's lease (a tombstone with ``epoch + 1``) and stamps
that epoch on the session's workflows as their owner epoch (``domain/recovery.py``).
From then on the old session is a zombie: if its agent is in fact still running, its
writes must be refused, or they would interleave with whoever resumes the work.

The CLI knows which session it runs for (``CLAUDE_CODE_SESSION_ID``, exported by Claude
Code to the commands its agent runs), and the session's lease says which epoch that
session holds: the lease's own epoch while it is held or ended normally, one less than
the tombstone's after a recovery broke it. :func:`caller_fence` works that out once per
command; :class:`~claude_state.domain.store.WorkflowStore` then refuses, under the
writer lock, a write to a workflow owned by the same session under a newer epoch
(:class:`~claude_state.errors.StaleEpochError`, exit 4), before anything is written.

An old lease file copied back over the current one (a restored backup) carries an epoch
older than the one its workflows record: :func:`stale_lease_problems` names it for
``verify``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from claude_state.errors import ClaudeStateError, IntegrityError
from claude_state.storage.layout import StateDir

__all__ = ["caller_fence", "stale_lease_problems"]


def held_epoch(lease: Any) -> int:
    """The epoch the session's own process holds, given its lease record.

    A tombstone left by a recoverer (reason ``broken`` or ``recovered``) carries the
    epoch after the one the crashed owner held.
    """
    from claude_state.domain import leases

    if lease.released and lease.reason in (leases.REASON_BROKEN, leases.REASON_RECOVERED):
        return int(lease.epoch) - 1
    return int(lease.epoch)


def caller_fence(state: StateDir, env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """``(session id, epoch held)`` of the session this command runs for, or None.

    None when no session is named, or it has no lease (never leased: nothing to fence
    against), or its lease cannot be read (a damaged lease is reported by ``status``
    and ``verify``; it says nothing about which epoch the caller holds).
    """
    from claude_state.domain import leases

    sid = leases.caller_session_id(env)
    if sid is None:
        return None
    try:
        lease = leases.read(state, sid)
    except (ClaudeStateError, OSError):
        return None
    if lease is None:
        return None
    return sid, held_epoch(lease)


def stale_lease_problems(state: StateDir) -> list[dict[str, str]]:
    """Leases older than what their workflows record: ``[{"path", "kind", "detail"}]``.

    A workflow owned by session S under epoch E means S's lease reached E (a recovery
    wrote the tombstone with E before stamping it; a resumed session takes E + 1). A
    lease of S with an epoch below E was therefore put back from an earlier copy.
    Damaged leases are left to the frame check, which names them already.
    """
    from claude_state.domain import leases
    from claude_state.domain.store import WorkflowStore

    try:
        names = os.listdir(state.sessions)
    except OSError:
        return []
    epochs: dict[str, int] = {}
    for name in names:
        if not name.endswith(".lease"):
            continue
        sid = name[: -len(".lease")]
        try:
            lease = leases.read(state, sid)
        except (ClaudeStateError, OSError):
            continue
        if lease is not None:
            epochs[sid] = lease.epoch
    if not epochs:
        return []
    problems = []
    store = WorkflowStore(state)
    try:
        for wid in store.ids():
            try:
                wf = store.load(wid)
            except (IntegrityError, ClaudeStateError):
                continue  # reported by the workflow check
            owner = wf.owner or {}
            osid, owner_epoch = owner.get("session_id"), owner.get("epoch")
            if osid in epochs and isinstance(owner_epoch, int) and epochs[osid] < owner_epoch:
                problems.append(
                    {
                        "path": state.lease(osid),
                        "kind": "stale_lease",
                        "detail": f"lease epoch {epochs[osid]} is older than epoch {owner_epoch}"
                        f" recorded by workflow {wid}: an old lease file was put back",
                    }
                )
    finally:
        store.close()
    return problems
