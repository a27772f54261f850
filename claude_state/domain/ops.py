"""Event-sourced workflow operations: the only way a :class:`Workflow` changes.

Each change is a small JSON-able op dict (``{"v": 1, "op": ..., "at": ...}``) built by the
``op_*`` constructors and applied by :func:`apply_op`. The same ops are appended to the
write-ahead log and replayed on load, which is why :func:`apply_op` is pure given
``(workflow, op)``: every timestamp travels inside the op, nothing reads the clock, and
replaying the same ops on the same snapshot yields the same document byte for byte.

:func:`apply_op` validates everything before it mutates anything, so a refused op
(:class:`TransitionError` exit 4, :class:`NotFoundError` exit 3, :class:`InvalidInputError`
exit 2) leaves the workflow exactly as it was and is never written to the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from claude_state.clock import check_iso, parse_iso
from claude_state.errors import InvalidInputError, StaleEpochError, TransitionError
from claude_state.ids import validate_id

from .model import (
    DONE_STATUSES,
    FINISHED_STATUSES,
    MAX_HISTORY,
    MAX_TOOL_CALLS,
    STEP_STATUSES,
    Step,
    Workflow,
    json_copy,
)

#: Version of the op format; ops carry it as ``"v"`` so old logs stay readable.
OP_VERSION = 1
INTERRUPTED = "interrupted by crash"

_MISSING: Any = object()

#: Called by an applier between its checks and its first change (see :func:`apply_op`).
Ready = Callable[[], None]

# Step transitions allowed by a step op (rollback and interrupt have their own rules).
# Completed and skipped are final here: only rollback takes a step back from them.
_ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "completed", "failed", "skipped"}),
    "running": frozenset({"pending", "completed", "failed", "skipped"}),
    "failed": frozenset({"running", "pending", "skipped"}),
    "completed": frozenset(),
    "skipped": frozenset(),
}


# -- constructors -------------------------------------------------------------------------


def _op(name: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"v": OP_VERSION, "op": name, "at": at, **fields}


def op_step(
    step_id: str, status: str, *, output: Any = _MISSING, error: Any = _MISSING, at: str
) -> dict[str, Any]:
    """Move a step to *status*; *output* / *error* are recorded only when given."""
    op = _op("step", at, step=step_id, status=status)
    if output is not _MISSING:
        op["output"] = output
    if error is not _MISSING:
        op["error"] = error
    return op


def op_set_data(key: str, value: Any, at: str) -> dict[str, Any]:
    """Set workflow data *key* to the JSON *value*."""
    return _op("set_data", at, key=key, value=value)


def op_delete_data(key: str, at: str) -> dict[str, Any]:
    """Remove workflow data *key* (it must exist)."""
    return _op("delete_data", at, key=key)


def op_pause(at: str) -> dict[str, Any]:
    """Pause an idle or running workflow: step updates are refused until resumed."""
    return _op("pause", at)


def op_resume(at: str) -> dict[str, Any]:
    """Resume a paused workflow; its status is derived again from its steps."""
    return _op("resume", at)


def op_cancel(at: str) -> dict[str, Any]:
    """Cancel a workflow that has not completed; cancelled is final."""
    return _op("cancel", at)


def op_rollback_steps(n: int, at: str) -> dict[str, Any]:
    """Return the last *n* finished steps (by finish order) to pending."""
    return _op("rollback", at, n=n)


def op_agent_state(step_id: str, state: dict[str, Any], at: str) -> dict[str, Any]:
    """Replace the agent's saved state for a step (what it needs to resume the step)."""
    return _op("agent_state", at, step=step_id, state=state)


def op_tool_call(step_id: str, call: dict[str, Any], at: str) -> dict[str, Any]:
    """Attach a (small) tool-call record to a step; only the last 50 are kept."""
    return _op("tool_call", at, step=step_id, call=call)


def op_owner(session_id: str, epoch: int, at: str) -> dict[str, Any]:
    """Make *session_id* the owner, fenced by *epoch* (must not go backwards)."""
    return _op("owner", at, session_id=session_id, epoch=epoch)


def op_interrupt(step_ids: list[str], at: str, detail: str = "") -> dict[str, Any]:
    """Crash recovery: the listed running steps go back to pending to be retried."""
    return _op("interrupt", at, steps=list(step_ids), detail=detail)


# -- helpers ------------------------------------------------------------------------------


def _field(op: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = op.get(key, _MISSING)
    if value is _MISSING or not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError(f"op {op.get('op')!r}: {key!r} missing or of the wrong type")
    return value


def _seconds(start: str | None, end: str) -> float:
    """Seconds between two ISO timestamps (0 when unknown or when clocks went back)."""
    if start is None:
        return 0.0
    try:
        return round(max(0.0, parse_iso(end) - parse_iso(start)), 3)
    except InvalidInputError:
        return 0.0


def _log(wf: Workflow, entry: dict[str, Any]) -> None:
    wf.history.append(entry)
    if len(wf.history) > MAX_HISTORY:
        del wf.history[: len(wf.history) - MAX_HISTORY]


def _step_metrics(wf: Workflow, step_id: str) -> dict[str, Any]:
    steps: dict[str, Any] = wf.metrics.setdefault("steps", {})
    m: dict[str, Any] = steps.setdefault(
        step_id, {"attempts": 0, "failures": 0, "duration": 0.0, "total_duration": 0.0}
    )
    return m


def derive_status(wf: Workflow, *, ignore_pause: bool = False) -> str:
    """The workflow status implied by its steps.

    Paused and cancelled are set only by ops and stick (unless *ignore_pause*, used by
    resume). Otherwise: completed when every step is completed or skipped, failed when
    a step failed with no retries left, idle while every step is pending, else running.
    """
    if wf.status == "cancelled" or (wf.status == "paused" and not ignore_pause):
        return wf.status
    _steps, n, pending, done, exhausted = _tally(wf)
    if pending == n:
        return "idle"
    if done == n:
        return "completed"
    return "failed" if exhausted else "running"


def _counts(s: Step) -> tuple[int, int, int]:
    """What one step adds to the tally: (pending, completed or skipped, exhausted)."""
    st = s.status
    return (
        st == "pending",
        st == "completed" or st == "skipped",
        st == "failed" and s.attempts >= s.max_retries + 1,
    )


def _tally(wf: Workflow) -> list[Any]:
    """``[steps, len, pending, done, exhausted]``: the counts :func:`derive_status` needs.

    Every step op derives the status again. A scan of every step is cheap while the
    steps are in the CPU cache and costs ~20 us on a 90-step workflow once other work
    has evicted them (each step a cache miss), a tenth of a durable step update here.
    So the counts are built by one scan on first use, kept in the workflow's
    ``__dict__`` (not a field: never stored, compared or put in a document) and moved
    by every op that changes a step. Only ops change steps (this module's contract),
    so the counts stay true; the scan runs again if the step list is replaced or
    resized.
    """
    t: list[Any] | None = wf.__dict__.get("_tally")
    steps = wf.steps
    if t is None or t[0] is not steps or t[1] != len(steps):
        pending = done = exhausted = 0
        for s in steps:
            p, d, x = _counts(s)
            pending += p
            done += d
            exhausted += x
        t = [steps, len(steps), pending, done, exhausted]
        wf.__dict__["_tally"] = t
    return t


def _retally(wf: Workflow, step: Step, before: tuple[int, int, int]) -> None:
    """Move the counts after *step* changed from what :func:`_counts` said *before*."""
    t = wf.__dict__.get("_tally")
    if t is not None:
        after = _counts(step)
        t[2] += after[0] - before[0]
        t[3] += after[1] - before[1]
        t[4] += after[2] - before[2]


def _set_status(wf: Workflow, status: str, at: str) -> None:
    if status != wf.status:
        _log(wf, {"at": at, "event": "workflow", "from": wf.status, "to": status})
        wf.status = status


def _refuse(wf: Workflow, msg: str, step: str = "") -> TransitionError:
    return TransitionError(f"workflow {wf.id}: {msg}", workflow_id=wf.id, step_id=step)


# -- appliers: each validates fully, then mutates ----------------------------------------


def _apply_step(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    sid = _field(op, "step", str)
    new = _field(op, "status", str)
    if new not in STEP_STATUSES:
        raise InvalidInputError(f"unknown step status {new!r}: one of {', '.join(STEP_STATUSES)}")
    output = json_copy(op["output"], "step output") if "output" in op else _MISSING
    error = op.get("error", _MISSING)
    if error is not _MISSING and error is not None and not isinstance(error, str):
        raise InvalidInputError("step error must be text or null")
    step = wf.step(sid)
    if wf.status in ("paused", "cancelled", "completed"):
        raise _refuse(wf, f"is {wf.status}: step {sid} cannot be updated", sid)
    old = step.status
    if new == old:
        raise _refuse(wf, f"step {sid} is already {old}", sid)
    if new not in _ALLOWED[old]:
        hint = " (only a rollback takes it back)" if old in DONE_STATUSES else ""
        raise _refuse(wf, f"step {sid} cannot go from {old} to {new}{hint}", sid)
    if new in ("running", "completed") and not wf.deps_done(step):
        waiting = [d for d in step.deps if wf.step(d).status not in DONE_STATUSES]
        raise _refuse(
            wf, f"step {sid} cannot be {new}: dependencies not done: {', '.join(waiting)}", sid
        )
    if old == "failed" and new in ("running", "pending") and step.exhausted:
        raise _refuse(
            wf,
            f"step {sid} has used all {step.max_retries + 1} attempts; skip it or roll it back",
            sid,
        )

    ready()  # -- mutate (nothing below can fail) --
    counted = _counts(step)
    m = _step_metrics(wf, sid)
    # An attempt is counted on every start, and on a step recorded as finished without
    # ever being started (so a direct pending->failed still uses up the retry budget).
    if new == "running" or (old == "pending" and new in ("completed", "failed")):
        step.attempts += 1
        m["attempts"] = step.attempts
        step.started_at = at
    if new == "running" or new == "pending":
        step.finished_at = None
    if old in FINISHED_STATUSES and step.id in wf.finish_order:
        wf.finish_order.remove(step.id)
    if new in FINISHED_STATUSES:
        step.finished_at = at
        wf.finish_order.append(step.id)
        m["duration"] = _seconds(step.started_at, at) if old == "running" else 0.0
        m["total_duration"] = round(m["total_duration"] + m["duration"], 3)
    if new == "failed":
        m["failures"] += 1
        wf.metrics["failures"] = wf.metrics.get("failures", 0) + 1
    if new == "completed":
        step.error = None
    if output is not _MISSING:
        step.output = output
    if error is not _MISSING:
        step.error = error
    step.status = new
    _retally(wf, step, counted)
    wf.metrics["transitions"] = wf.metrics.get("transitions", 0) + 1
    entry: dict[str, Any] = {"at": at, "event": "step", "step": sid, "from": old, "to": new}
    if isinstance(error, str):
        entry["detail"] = error
    _log(wf, entry)
    _set_status(wf, derive_status(wf), at)


def _apply_rollback(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    n = _field(op, "n", int)
    if n < 1:
        raise InvalidInputError("rollback: the number of steps must be at least 1")
    if wf.status == "cancelled":
        raise _refuse(wf, "is cancelled: it cannot be rolled back")
    if n > len(wf.finish_order):
        raise _refuse(wf, f"cannot roll back {n} steps: only {len(wf.finish_order)} finished")
    targets = wf.finish_order[-n:]
    back = set(targets)
    for s in wf.steps:
        if s.status == "running" and back.intersection(s.deps):
            dep = next(d for d in s.deps if d in back)
            raise _refuse(wf, f"step {s.id} is running and depends on {dep}", s.id)
    steps = [wf.step(sid) for sid in reversed(targets)]  # NotFound = corrupt doc: before
    ready()
    for step in steps:
        entry = {"at": at, "event": "rollback", "step": step.id, "from": step.status}
        _log(wf, {**entry, "to": "pending"})
        counted = _counts(step)
        step.status = "pending"
        _retally(wf, step, counted)
        step.output = None
        step.error = None
        step.started_at = None
        step.finished_at = None
    del wf.finish_order[-n:]
    wf.metrics["transitions"] = wf.metrics.get("transitions", 0) + n
    _set_status(wf, derive_status(wf), at)


def _apply_interrupt(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    ids = _field(op, "steps", list)
    detail = op.get("detail", "")
    if not isinstance(detail, str):
        raise InvalidInputError("interrupt: 'detail' must be text")
    steps: list[Step] = []
    for sid in dict.fromkeys(ids):
        if not isinstance(sid, str):
            raise InvalidInputError("interrupt: 'steps' must be a list of step ids")
        step = wf.step(sid)
        if step.status != "running":
            raise _refuse(wf, f"step {sid} is {step.status}, not running", sid)
        steps.append(step)
    ready()
    note = f"{INTERRUPTED}: {detail}" if detail else INTERRUPTED
    for step in steps:
        counted = _counts(step)
        step.status = "pending"
        _retally(wf, step, counted)
        step.error = note
        step.started_at = None
        entry = {"at": at, "event": "interrupt", "step": step.id, "from": "running"}
        _log(wf, {**entry, "to": "pending", "detail": note})
    wf.metrics["transitions"] = wf.metrics.get("transitions", 0) + len(steps)
    _set_status(wf, derive_status(wf), at)


def _apply_pause(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    if wf.status not in ("idle", "running"):
        raise _refuse(wf, f"is {wf.status}: only an idle or running workflow can be paused")
    ready()
    _set_status(wf, "paused", at)


def _apply_resume(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    if wf.status != "paused":
        raise _refuse(wf, f"is {wf.status}, not paused")
    ready()
    _set_status(wf, derive_status(wf, ignore_pause=True), at)


def _apply_cancel(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    if wf.status in ("completed", "cancelled"):
        raise _refuse(wf, f"is already {wf.status}")
    ready()
    _set_status(wf, "cancelled", at)


def _apply_set_data(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    key = _field(op, "key", str)
    if not key:
        raise InvalidInputError("data key must not be empty")
    if "value" not in op:
        raise InvalidInputError("set_data: 'value' missing")
    value = json_copy(op["value"], f"data {key!r}")
    ready()
    wf.data[key] = value
    _log(wf, {"at": at, "event": "set_data", "detail": key})


def _apply_delete_data(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    from claude_state.errors import NotFoundError

    key = _field(op, "key", str)
    if key not in wf.data:
        raise NotFoundError("data key", key, f"in workflow {wf.id}")
    ready()
    del wf.data[key]
    _log(wf, {"at": at, "event": "delete_data", "detail": key})


def _apply_agent_state(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    step = wf.step(_field(op, "step", str))
    state = json_copy(_field(op, "state", dict), "agent state")
    ready()
    step.agent_state = state


def _apply_tool_call(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    step = wf.step(_field(op, "step", str))
    call = json_copy(_field(op, "call", dict), "tool call")
    ready()
    step.tool_calls.append(call)
    if len(step.tool_calls) > MAX_TOOL_CALLS:
        del step.tool_calls[: len(step.tool_calls) - MAX_TOOL_CALLS]
    wf.metrics["tool_calls"] = wf.metrics.get("tool_calls", 0) + 1


def _apply_owner(wf: Workflow, op: dict[str, Any], at: str, ready: Ready) -> None:
    sid = validate_id(_field(op, "session_id", str), "session id")
    epoch = _field(op, "epoch", int)
    if epoch < 0:
        raise InvalidInputError("owner epoch must be >= 0")
    cur = wf.owner
    if cur is not None:
        cur_epoch = int(cur["epoch"])
        # The epoch is a fencing token: a new owner must present a newer one; the same
        # owner may re-assert its own. Anything else is a zombie writer.
        if epoch < cur_epoch or (epoch == cur_epoch and sid != cur["session_id"]):
            raise StaleEpochError(f"workflow {wf.id}", epoch, cur_epoch)
    ready()
    wf.owner = {"session_id": sid, "epoch": epoch}
    _log(wf, {"at": at, "event": "owner", "detail": f"{sid} epoch {epoch}"})


_APPLIERS: dict[str, Callable[[Workflow, dict[str, Any], str, Ready], None]] = {
    "step": _apply_step,
    "rollback": _apply_rollback,
    "interrupt": _apply_interrupt,
    "pause": _apply_pause,
    "resume": _apply_resume,
    "cancel": _apply_cancel,
    "set_data": _apply_set_data,
    "delete_data": _apply_delete_data,
    "agent_state": _apply_agent_state,
    "tool_call": _apply_tool_call,
    "owner": _apply_owner,
}


def _nothing() -> None:
    pass


def apply_op(
    wf: Workflow, op: dict[str, Any], *, trusted: bool = False, ready: Ready = _nothing
) -> None:
    """Apply one op to *wf* in place, or raise and leave *wf* untouched.

    :raises InvalidInputError: a malformed op (unknown name or version, bad field, bad
        timestamp, a value that is not plain JSON).
    :raises NotFoundError: an unknown step (or data key for ``delete_data``).
    :raises TransitionError: a transition the rules refuse (see ``docs/cli-contract.md``).
    :raises StaleEpochError: an ``owner`` op with an older epoch (a fenced writer).
    :param trusted: the op is being replayed from the WAL, where it was written only after
        it had been applied once; its timestamp is not parsed again (about a third of the
        cost of a replayed op). Every transition rule is still checked.
    :param ready: called once the op has passed every check and before anything is
        changed; whatever it raises propagates with *wf* untouched. The store writes
        the op to its WAL here, so the mutation (which cannot fail) runs while the
        device writes, before the flush.
    """
    if not isinstance(op, dict):
        raise InvalidInputError("an op must be an object")
    if op.get("v") != OP_VERSION:
        raise InvalidInputError(f"unsupported op version {op.get('v')!r} (expected {OP_VERSION})")
    name = op.get("op")
    applier = _APPLIERS.get(name) if isinstance(name, str) else None
    if applier is None:
        raise InvalidInputError(f"unknown op {name!r}")
    at = _field(op, "at", str)
    if not trusted:  # a replayed op was checked when it was first applied
        check_iso(at)
    applier(wf, op, at, ready)
    wf.updated_at = at
    wf.revision += 1


def apply_ops(wf: Workflow, ops: Iterable[dict[str, Any]]) -> None:
    """Apply *ops* in order (replay); stops at, and raises, the first refused op."""
    for op in ops:
        apply_op(wf, op)
