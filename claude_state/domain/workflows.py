"""Workflow operations that span the workflow store and the checkpoint store.

Most changes are single ops applied through :class:`WorkflowStore` (``domain/ops.py``);
the ones here need both stores, which is why they live in neither: a rollback either
replays a rollback op (by steps) or restores a checkpoint (to one). The workflow a
session is driving (:func:`active_workflow`) is read from the session record and the
workflow store, so it lives here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from claude_state.errors import (
    ClaudeStateError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)

if TYPE_CHECKING:
    from claude_state.domain.checkpoints import CheckpointStore
    from claude_state.domain.model import Workflow
    from claude_state.domain.store import WorkflowStore
    from claude_state.storage.layout import StateDir


#: Workflow statuses in which work remains.
OPEN_STATUSES = frozenset({"idle", "running", "paused"})


def active_workflow(
    state: StateDir, record: Any, store: WorkflowStore | None = None
) -> Workflow | None:
    """The open workflow *record* (a ``SessionRecord``) last worked on, or None.

    The record's ``active_workflow`` first, then the other workflows it noted, newest
    first. Completed, cancelled, failed and missing workflows are passed over.
    """
    if record is None:
        return None
    if store is None:
        from claude_state.domain.store import WorkflowStore

        store = WorkflowStore(state)
    candidates: list[str] = []
    first = getattr(record, "active_workflow", None)
    if isinstance(first, str):
        candidates.append(first)
    for wid in reversed(list(getattr(record, "workflows", None) or [])):
        if isinstance(wid, str) and wid not in candidates:
            candidates.append(wid)
    for wid in candidates:
        try:
            wf = store.load(wid)
        except ClaudeStateError:
            continue
        if wf.status in OPEN_STATUSES:
            return wf
    return None


def rollback(
    store: WorkflowStore,
    cps: CheckpointStore | None,
    workflow_id: str,
    *,
    steps: int | None = None,
    to: str | None = None,
    epoch: int | None = None,
) -> dict[str, Any]:
    """Roll a workflow back by *steps* finished steps, or to checkpoint *to*.

    By steps: the last *steps* finished steps (by finish order, however long ago) go
    back to pending, as one durable op. To a checkpoint: the checkpoint is restored
    (see :meth:`CheckpointStore.restore`; a damaged one falls back and warns); it must
    belong to *workflow_id*.

    :returns: ``{"id", "status", "progress", "current_step", "rolled_back": [step ids]}``
        plus ``"checkpoint_id", "restored_from", "warnings"`` for a checkpoint.
    :raises InvalidInputError: neither or both of *steps* / *to*, or steps < 1.
    :raises NotFoundError: unknown workflow or checkpoint (or one of another workflow).
    :raises TransitionError: fewer finished steps than asked, a cancelled workflow...
    """
    from claude_state.clock import now_iso
    from claude_state.domain.ops import op_rollback_steps
    from claude_state.ids import validate_id

    validate_id(workflow_id, "workflow id")
    if (steps is None) == (to is None):
        raise InvalidInputError("rollback needs exactly one of --steps N or --to CHECKPOINT")
    if steps is not None:
        if steps < 1:
            raise InvalidInputError("rollback: the number of steps must be at least 1")
        cur = store.load(workflow_id)
        back = cur.finish_order[-steps:] if steps <= len(cur.finish_order) else []
        wf = store.apply(workflow_id, op_rollback_steps(steps, now_iso()), epoch=epoch)
        return {
            "id": wf.id,
            "status": wf.status,
            "progress": wf.progress,
            "current_step": wf.current_step,
            "rolled_back": list(reversed(back)),
        }
    assert to is not None
    if cps is None:
        from claude_state.domain.checkpoints import CheckpointStore

        cps = CheckpointStore(store.state, workflows=store)
    validate_id(to, "checkpoint id")
    owner = cps.find(to)
    if owner != workflow_id:
        raise NotFoundError("checkpoint", to, f"of workflow {workflow_id} (it is of {owner})")
    try:
        before: Workflow | None = store.load(workflow_id)
    except (NotFoundError, IntegrityError):  # a damaged workflow is what restore is for
        before = None
    before_steps = {s.id: s.status for s in before.steps} if before is not None else {}
    res = cps.restore(to)
    wf = store.load(workflow_id)
    changed = [s.id for s in wf.steps if before_steps.get(s.id, s.status) != s.status]
    return {
        "id": wf.id,
        "status": wf.status,
        "progress": wf.progress,
        "current_step": wf.current_step,
        "rolled_back": changed,
        "checkpoint_id": res["checkpoint_id"],
        "restored_from": res["restored_from"],
        "warnings": res["warnings"],
    }
