"""Tests for event-sourced workflow ops: every rule, atomic refusal, and determinism."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_state.domain.definition import parse_definition
from claude_state.domain.model import DONE_STATUSES, FINISHED_STATUSES, Workflow
from claude_state.domain.ops import (
    INTERRUPTED,
    apply_op,
    apply_ops,
    derive_status,
    op_agent_state,
    op_cancel,
    op_delete_data,
    op_interrupt,
    op_owner,
    op_pause,
    op_resume,
    op_rollback_steps,
    op_set_data,
    op_step,
    op_tool_call,
)
from claude_state.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StaleEpochError,
    TransitionError,
)

T0 = "2025-01-01T00:00:00.000Z"


def t(i: int) -> str:
    """The i-th second after T0, as ISO text."""
    return f"2025-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"


def make(*, retries: int = 0) -> Workflow:
    """plan -> build -> test, plan -> docs (the contract's example)."""
    return parse_definition(
        {
            "id": "wf",
            "steps": [
                {"id": "plan"},
                {"id": "build", "deps": ["plan"], "max_retries": retries},
                {"id": "test", "deps": ["build"]},
                {"id": "docs", "deps": ["plan"]},
            ],
        },
        at=T0,
    )


def run(wf: Workflow, *ops: dict[str, Any]) -> Workflow:
    apply_ops(wf, ops)
    return wf


def snap(wf: Workflow) -> bytes:
    return orjson.dumps(wf.to_dict())


def refused(
    wf: Workflow, op: dict[str, Any], exc: type[Exception], match: str | None = None
) -> None:
    """Apply *op* expecting *exc*, and check the workflow is byte-identical afterwards."""
    before = snap(wf)
    with pytest.raises(exc, match=match):
        apply_op(wf, op)
    assert snap(wf) == before


# -- constructors -----------------------------------------------------------------------


def test_every_op_is_versioned_json() -> None:
    ops = [
        op_step("a", "completed", output={"x": 1}, error=None, at=T0),
        op_set_data("k", [1], T0),
        op_delete_data("k", T0),
        op_pause(T0),
        op_resume(T0),
        op_cancel(T0),
        op_rollback_steps(2, T0),
        op_agent_state("a", {"s": 1}, T0),
        op_tool_call("a", {"tool": "Bash"}, T0),
        op_owner("sess-1", 3, T0),
        op_interrupt(["a"], T0, "pid 12 gone"),
    ]
    for op in ops:
        assert op["v"] == 1 and op["at"] == T0 and isinstance(op["op"], str)
        assert orjson.loads(orjson.dumps(op)) == op
    assert "output" not in op_step("a", "running", at=T0)
    assert "error" not in op_step("a", "running", at=T0)


# -- the happy path ---------------------------------------------------------------------


def test_full_run() -> None:
    wf = make()
    assert wf.status == "idle"
    apply_op(wf, op_step("plan", "running", at=t(1)))
    assert wf.status == "running" and wf.current_step == "plan"
    plan = wf.step("plan")
    assert plan.attempts == 1 and plan.started_at == t(1) and plan.finished_at is None
    apply_op(wf, op_step("plan", "completed", output={"plan": "ok"}, at=t(4)))
    assert plan.finished_at == t(4) and plan.output == {"plan": "ok"}
    assert wf.metrics["steps"]["plan"]["duration"] == 3.0
    assert wf.progress == 25.0 and wf.current_step == "build"
    run(
        wf,
        op_step("build", "running", at=t(5)),
        op_step("build", "completed", at=t(6)),
        op_step("test", "running", at=t(7)),
        op_step("test", "completed", at=t(9)),
        op_step("docs", "skipped", at=t(10)),
    )
    assert wf.status == "completed" and wf.progress == 100.0 and wf.current_step is None
    assert wf.updated_at == t(10) and wf.revision == 7
    assert wf.finish_order == ["plan", "build", "test", "docs"]
    assert wf.metrics["transitions"] == 7 and wf.metrics["failures"] == 0
    events = [(h["event"], h.get("step"), h.get("from"), h.get("to")) for h in wf.history]
    # the step transition first, then the workflow status change it caused
    assert events[0] == ("step", "plan", "pending", "running")
    assert events[1] == ("workflow", None, "idle", "running")
    assert events[-1] == ("workflow", None, "running", "completed")


def test_pending_to_completed_records_an_attempt() -> None:
    wf = run(make(), op_step("plan", "completed", at=t(1)))
    plan = wf.step("plan")
    assert plan.status == "completed" and plan.attempts == 1
    assert plan.started_at == plan.finished_at == t(1)


def test_skipped_dependency_unblocks() -> None:
    wf = run(make(), op_step("plan", "skipped", at=t(1)), op_step("docs", "running", at=t(2)))
    assert wf.step("docs").status == "running"
    assert wf.step("plan").attempts == 0


# -- contract refusals (exit 4) ---------------------------------------------------------


def test_start_with_unfinished_deps_refused() -> None:
    wf = make()
    refused(wf, op_step("build", "running", at=t(1)), TransitionError, "plan")
    apply_op(wf, op_step("plan", "running", at=t(1)))
    refused(wf, op_step("build", "running", at=t(2)), TransitionError, "dependencies")
    refused(wf, op_step("build", "completed", at=t(2)), TransitionError, "dependencies")
    apply_op(wf, op_step("plan", "failed", at=t(3)))
    refused(wf, op_step("docs", "running", at=t(4)), TransitionError)


def test_completed_step_cannot_go_back() -> None:
    wf = run(make(), op_step("plan", "completed", at=t(1)))
    for status in ("running", "pending", "failed", "skipped"):
        refused(wf, op_step("plan", status, at=t(2)), TransitionError, "rollback")
    wf = run(make(), op_step("plan", "skipped", at=t(1)))
    refused(wf, op_step("plan", "running", at=t(2)), TransitionError)


@pytest.mark.parametrize("how", ["pause", "cancel", "complete"])
def test_step_updates_refused_on_paused_cancelled_completed(how: str) -> None:
    wf = run(make(), op_step("plan", "running", at=t(1)))
    if how == "pause":
        apply_op(wf, op_pause(t(2)))
    elif how == "cancel":
        apply_op(wf, op_cancel(t(2)))
    else:
        for s in ("plan", "build", "test", "docs"):
            apply_op(wf, op_step(s, "completed", at=t(2)))
    assert wf.status in ("paused", "cancelled", "completed")
    for sid, status in (("plan", "completed"), ("docs", "running"), ("test", "skipped")):
        with pytest.raises(TransitionError) as ei:
            apply_op(wf, op_step(sid, status, at=t(3)))
        assert ei.value.exit_code == 4 and ei.value.workflow_id == "wf"


def test_same_status_refused() -> None:
    wf = run(make(), op_step("plan", "running", at=t(1)))
    refused(wf, op_step("plan", "running", at=t(2)), TransitionError, "already")
    refused(wf, op_step("docs", "pending", at=t(2)), TransitionError, "already")


# -- retries ----------------------------------------------------------------------------


def test_retry_until_exhausted() -> None:
    wf = run(make(retries=1), op_step("plan", "completed", at=t(1)))
    apply_op(wf, op_step("build", "running", at=t(2)))
    apply_op(wf, op_step("build", "failed", error="boom", at=t(3)))
    b = wf.step("build")
    assert b.error == "boom" and b.attempts == 1 and wf.status == "running"  # 1 retry left
    assert wf.history[-1]["detail"] == "boom"
    apply_op(wf, op_step("build", "running", at=t(4)))
    assert b.attempts == 2 and b.finished_at is None and "build" not in wf.finish_order
    apply_op(wf, op_step("build", "failed", error="boom2", at=t(5)))
    assert wf.status == "failed" and b.exhausted
    assert wf.metrics["failures"] == 2 and wf.metrics["steps"]["build"]["failures"] == 2
    refused(wf, op_step("build", "running", at=t(6)), TransitionError, "attempts")
    refused(wf, op_step("build", "pending", at=t(6)), TransitionError, "attempts")
    # other work may still be recorded on a failed workflow; skipping unblocks it
    apply_op(wf, op_step("docs", "completed", at=t(7)))
    apply_op(wf, op_step("build", "skipped", at=t(8)))
    assert wf.status == "running" and wf.finish_order[-1] == "build"


def test_failed_to_pending_queues_a_retry() -> None:
    wf = run(make(retries=2), op_step("plan", "completed", at=t(1)))
    run(wf, op_step("build", "running", at=t(2)), op_step("build", "failed", at=t(3)))
    apply_op(wf, op_step("build", "pending", at=t(4)))
    assert wf.step("build").status == "pending" and wf.step("build").attempts == 1
    apply_op(wf, op_step("build", "running", at=t(5)))
    assert wf.step("build").attempts == 2


def test_direct_failure_uses_the_budget() -> None:
    wf = run(make(), op_step("plan", "failed", at=t(1)))
    assert wf.step("plan").attempts == 1 and wf.status == "failed"
    refused(wf, op_step("plan", "running", at=t(2)), TransitionError)


def test_running_back_to_pending_keeps_attempts() -> None:
    wf = run(make(), op_step("plan", "running", at=t(1)), op_step("plan", "pending", at=t(2)))
    assert wf.step("plan").attempts == 1 and wf.status == "idle"
    apply_op(wf, op_step("plan", "running", at=t(3)))
    assert wf.step("plan").attempts == 2


# -- pause, resume, cancel --------------------------------------------------------------


def test_pause_resume_cancel() -> None:
    wf = make()
    refused(wf, op_resume(t(1)), TransitionError, "not paused")
    apply_op(wf, op_pause(t(1)))
    assert wf.status == "paused"
    refused(wf, op_pause(t(2)), TransitionError)
    apply_op(wf, op_resume(t(2)))
    assert wf.status == "idle"
    run(wf, op_step("plan", "running", at=t(3)), op_pause(t(4)), op_resume(t(5)))
    assert wf.status == "running"
    apply_op(wf, op_cancel(t(6)))
    assert wf.status == "cancelled"
    for op in (op_cancel(t(7)), op_pause(t(7)), op_resume(t(7)), op_rollback_steps(1, t(7))):
        refused(wf, op, TransitionError)


def test_cannot_cancel_or_pause_completed() -> None:
    wf = make()
    for s in ("plan", "build", "test", "docs"):
        apply_op(wf, op_step(s, "completed", at=t(1)))
    refused(wf, op_cancel(t(2)), TransitionError, "completed")
    refused(wf, op_pause(t(2)), TransitionError, "completed")


def test_resume_derives_completed_state() -> None:
    wf = run(make(), op_step("plan", "completed", at=t(1)), op_pause(t(2)))
    apply_op(wf, op_interrupt([], t(3)))
    assert wf.status == "paused"
    apply_op(wf, op_resume(t(4)))
    assert wf.status == "running"


# -- rollback ---------------------------------------------------------------------------


def _completed() -> Workflow:
    wf = make()
    for i, s in enumerate(("plan", "docs", "build", "test")):
        run(
            wf,
            op_step(s, "running", at=t(2 * i)),
            op_step(s, "completed", output=s, at=t(2 * i + 1)),
        )
    return wf


def test_rollback_last_finished_steps() -> None:
    wf = _completed()
    assert wf.status == "completed"
    apply_op(wf, op_rollback_steps(2, t(20)))
    assert [s.status for s in wf.steps] == ["completed", "pending", "pending", "completed"]
    build = wf.step("build")
    assert build.output is None and build.attempts == 1 and build.finished_at is None
    assert wf.status == "running" and wf.finish_order == ["plan", "docs"]
    assert wf.current_step == "build"
    assert [h["step"] for h in wf.history if h["event"] == "rollback"] == ["test", "build"]
    run(wf, op_step("build", "running", at=t(21)))
    assert build.attempts == 2


def test_rollback_everything_is_idle() -> None:
    wf = _completed()
    apply_op(wf, op_rollback_steps(4, t(20)))
    assert wf.status == "idle" and wf.progress == 0.0 and wf.finish_order == []


def test_rollback_uses_finish_order_not_definition_order() -> None:
    wf = run(
        make(),
        op_step("plan", "completed", at=t(1)),
        op_step("docs", "failed", at=t(2)),
        op_step("build", "completed", at=t(3)),
    )
    assert wf.status == "failed"
    apply_op(wf, op_rollback_steps(2, t(4)))
    assert wf.step("docs").status == "pending" and wf.step("build").status == "pending"
    assert wf.status == "running" and wf.step("docs").attempts == 1


def test_rollback_refusals() -> None:
    wf = run(make(), op_step("plan", "completed", at=t(1)))
    refused(wf, op_rollback_steps(2, t(2)), TransitionError, "only 1")
    refused(wf, op_rollback_steps(0, t(2)), InvalidInputError)
    refused(wf, op_rollback_steps(True, t(2)), InvalidInputError)  # a bool is not a count
    apply_op(wf, op_step("docs", "running", at=t(2)))
    refused(wf, op_rollback_steps(1, t(3)), TransitionError, "docs is running")


def test_rollback_while_paused_stays_paused() -> None:
    wf = run(_completed(), op_rollback_steps(1, t(20)))
    run(wf, op_pause(t(21)), op_rollback_steps(1, t(22)))
    assert wf.status == "paused"


# -- interrupt (crash recovery) ----------------------------------------------------------


def test_interrupt_makes_running_steps_retryable() -> None:
    wf = run(
        make(),
        op_step("plan", "completed", at=t(1)),
        op_step("build", "running", at=t(2)),
        op_step("docs", "running", at=t(2)),
    )
    apply_op(wf, op_interrupt(["build", "docs"], t(9), "pid 4242 gone"))
    for sid in ("build", "docs"):
        s = wf.step(sid)
        assert s.status == "pending" and s.attempts == 1 and s.started_at is None
        assert s.error == f"{INTERRUPTED}: pid 4242 gone"
    assert wf.status == "running"
    apply_op(wf, op_step("build", "running", at=t(10)))  # can be retried, even at 0 retries
    assert wf.step("build").attempts == 2
    refused(wf, op_interrupt(["docs"], t(11)), TransitionError, "not running")
    refused(wf, op_interrupt(["nope"], t(11)), NotFoundError)
    refused(wf, op_interrupt(["build", 3], t(11)), InvalidInputError)  # type: ignore[list-item]


def test_interrupt_works_on_a_paused_workflow() -> None:
    wf = run(make(), op_step("plan", "running", at=t(1)), op_pause(t(2)))
    apply_op(wf, op_interrupt(["plan"], t(3)))
    assert wf.step("plan").error == INTERRUPTED and wf.status == "paused"


# -- data, agent state, tool calls, owner ------------------------------------------------


def test_data_ops() -> None:
    wf = make()
    value = {"nested": [1, 2]}
    apply_op(wf, op_set_data("k", value, t(1)))
    value["nested"].append(3)
    assert wf.data == {"k": {"nested": [1, 2]}}, "op values must be copied in"
    apply_op(wf, op_delete_data("k", t(2)))
    assert wf.data == {}
    refused(wf, op_delete_data("k", t(3)), NotFoundError)
    refused(wf, op_set_data("", 1, t(3)), InvalidInputError)
    refused(wf, op_set_data("k", (1, 2), t(3)), InvalidInputError)
    refused(wf, op_set_data("k", float("nan"), t(3)), InvalidInputError)
    refused(wf, {"v": 1, "op": "set_data", "at": t(3), "key": "k"}, InvalidInputError)


def test_agent_state_and_tool_calls() -> None:
    wf = make()
    apply_op(wf, op_agent_state("plan", {"cursor": 3}, t(1)))
    assert wf.step("plan").agent_state == {"cursor": 3}
    for i in range(60):
        apply_op(wf, op_tool_call("plan", {"tool": "Bash", "n": i}, t(2)))
    calls = wf.step("plan").tool_calls
    assert len(calls) == 50 and calls[0]["n"] == 10 and calls[-1]["n"] == 59
    assert wf.metrics["tool_calls"] == 60
    refused(wf, op_tool_call("ghost", {}, t(3)), NotFoundError)
    refused(wf, op_agent_state("plan", [1], t(3)), InvalidInputError)  # type: ignore[arg-type]
    refused(wf, op_tool_call("plan", {"x": object()}, t(3)), InvalidInputError)


def test_history_is_bounded() -> None:
    wf = make()
    for i in range(250):
        apply_op(wf, op_set_data("k", i, t(i)))
    assert len(wf.history) == 200 and wf.history[-1]["at"] == t(249)
    assert wf.history[0]["at"] == t(50)


def test_owner_epochs_fence_zombies() -> None:
    wf = make()
    apply_op(wf, op_owner("s1", 1, t(1)))
    apply_op(wf, op_owner("s1", 1, t(2)))  # re-asserting is fine
    apply_op(wf, op_owner("s2", 2, t(3)))
    assert wf.owner == {"session_id": "s2", "epoch": 2}
    refused(wf, op_owner("s1", 1, t(4)), StaleEpochError)
    refused(wf, op_owner("s3", 2, t(4)), ConflictError)
    refused(wf, op_owner("../x", 5, t(4)), InvalidInputError)
    refused(wf, op_owner("s3", -1, t(4)), InvalidInputError)


# -- malformed ops ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        [],
        {"op": "pause", "at": T0},
        {"v": 2, "op": "pause", "at": T0},
        {"v": 1, "op": "explode", "at": T0},
        {"v": 1, "op": None, "at": T0},
        {"v": 1, "op": "pause"},
        {"v": 1, "op": "pause", "at": "yesterday"},
        {"v": 1, "op": "step", "at": T0, "status": "running"},
        {"v": 1, "op": "step", "at": T0, "step": "plan", "status": "done"},
        {"v": 1, "op": "step", "at": T0, "step": "plan", "status": "failed", "error": 3},
        {"v": 1, "op": "step", "at": T0, "step": "plan", "status": "completed", "output": {1}},
        {"v": 1, "op": "rollback", "at": T0, "n": "1"},
    ],
)
def test_malformed_ops_refused(op: Any) -> None:
    refused(make(), op, InvalidInputError)


def test_unknown_step_not_found() -> None:
    wf = make()
    before = snap(wf)
    with pytest.raises(NotFoundError) as ei:
        apply_op(wf, op_step("ghost", "running", at=t(1)))
    assert ei.value.exit_code == 3 and snap(wf) == before


# -- properties: determinism, atomic refusal, invariants ---------------------------------

STEP_IDS = ["plan", "build", "test", "docs", "ghost"]
# Weighted so random runs reach every workflow status (completed, failed...) often,
# rather than being cancelled early: cancel is rare, step updates common.
KINDS = ["step"] * 14 + ["rollback"] * 2 + ["interrupt", "pause", "resume", "data", "tool"]
KINDS += ["owner", "cancel"]
STATUSES = ["running"] * 3 + ["completed"] * 3 + ["failed", "skipped", "pending"]


@st.composite
def ops(draw: st.DrawFn, i: int) -> dict[str, Any]:
    at = t(i)
    kind = draw(st.sampled_from(KINDS))
    if kind == "cancel" and draw(st.integers(0, 3)):
        kind = "data"
    sid = draw(st.sampled_from(STEP_IDS[:4] * 4 + STEP_IDS[4:]))
    if kind == "step":
        status = draw(st.sampled_from(STATUSES))
        out = draw(st.none() | st.integers() | st.just({"$blob": "ab" * 16, "size": 9}))
        return op_step(sid, status, output=out, error=draw(st.none() | st.text(max_size=4)), at=at)
    if kind == "rollback":
        return op_rollback_steps(draw(st.integers(0, 4)), at)
    if kind == "interrupt":
        return op_interrupt(draw(st.lists(st.sampled_from(STEP_IDS), max_size=2)), at, "x")
    if kind == "data":
        return op_set_data(draw(st.sampled_from(["a", "b"])), draw(st.integers()), at)
    if kind == "tool":
        return op_tool_call(sid, {"tool": "Read"}, at)
    if kind == "owner":
        return op_owner(draw(st.sampled_from(["s1", "s2"])), draw(st.integers(0, 3)), at)
    return {"pause": op_pause, "resume": op_resume, "cancel": op_cancel}[kind](at)


@st.composite
def op_sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    return [draw(ops(i)) for i in range(n)]


def check_invariants(wf: Workflow) -> None:
    finished = [s.id for s in wf.steps if s.status in FINISHED_STATUSES]
    assert sorted(wf.finish_order) == sorted(finished)
    for s in wf.steps:
        if s.status in ("running", "completed"):
            assert all(wf.step(d).status in DONE_STATUSES for d in s.deps), s.id
        assert (s.finished_at is not None) == (s.status in FINISHED_STATUSES)
        assert s.attempts >= 0
    assert 0.0 <= wf.progress <= 100.0
    assert len(wf.history) <= 200
    if wf.status not in ("paused", "cancelled"):
        assert wf.status == derive_status(wf) == scan_status(wf)


def scan_status(wf: Workflow) -> str:
    """The status rule read straight from the steps: the check on derive_status's
    incrementally kept counts."""
    if all(s.status == "pending" for s in wf.steps):
        return "idle"
    if all(s.status in DONE_STATUSES for s in wf.steps):
        return "completed"
    return "failed" if any(s.exhausted for s in wf.steps) else "running"


@given(op_sequences(), st.integers(0, 2))
@settings(max_examples=150, deadline=None)
def test_random_ops_atomic_deterministic_and_replayable(
    seq: list[dict[str, Any]], retries: int
) -> None:
    wf = make(retries=retries)
    accepted: list[dict[str, Any]] = []
    for op in seq:
        before = snap(wf)
        try:
            apply_op(wf, op)
        except (InvalidInputError, NotFoundError, ConflictError):
            assert snap(wf) == before, f"refused {op} changed the workflow"
        else:
            accepted.append(op)
        check_invariants(wf)
    # Replaying the accepted ops (as the WAL would, through JSON bytes) on the same
    # starting document reproduces the final document byte for byte.
    replayed = make(retries=retries)
    apply_ops(replayed, [orjson.loads(orjson.dumps(op)) for op in accepted])
    assert snap(replayed) == snap(wf)
    # ...and so does a document that went through to_dict/from_dict half way.
    half = len(accepted) // 2
    other = run(make(retries=retries), *accepted[:half])
    other = Workflow.from_dict(orjson.loads(snap(other)))
    apply_ops(other, accepted[half:])
    assert snap(other) == snap(wf)
    assert wf.revision == len(accepted)


@given(op_sequences(), st.integers(0, 2))
@settings(max_examples=100, deadline=None)
def test_ready_runs_once_between_the_checks_and_the_first_change(
    seq: list[dict[str, Any]], retries: int
) -> None:
    """The store writes an op in ``ready`` and mutates while the device writes, so every
    applier must call it exactly once, after its last check and before its first
    change: an accepted op sees the workflow unchanged at that moment, and a refused
    op never reaches it (it must never be written)."""
    wf = make(retries=retries)
    for op in seq:
        before = snap(wf)
        seen: list[bytes] = []
        try:
            apply_op(wf, op, ready=lambda seen=seen: seen.append(snap(wf)))
        except (InvalidInputError, NotFoundError, ConflictError):
            assert seen == [], f"refused {op['op']} called ready"
        else:
            assert seen == [before], f"{op['op']}: ready called {len(seen)}x or too late"


def test_ready_check_catches_an_applier_that_changes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Control: an applier that changes the workflow before calling ``ready`` is caught."""
    from claude_state.domain import ops as ops_mod

    def early(wf: Workflow, op: dict[str, Any], at: str, ready: Any) -> None:
        wf.data["early"] = True
        ready()

    monkeypatch.setitem(ops_mod._APPLIERS, "pause", early)
    wf = make()
    before = snap(wf)
    seen: list[bytes] = []
    apply_op(wf, op_pause(t(1)), ready=lambda: seen.append(snap(wf)))
    assert seen != [before]


def test_same_ops_same_document() -> None:
    seq = [
        op_step("plan", "running", at=t(1)),
        op_step("plan", "completed", output={"x": 1}, at=t(2)),
        op_tool_call("build", {"tool": "Bash"}, t(3)),
        op_step("build", "running", at=t(3)),
        op_interrupt(["build"], t(4), "crash"),
        op_rollback_steps(1, t(5)),
    ]
    a, b = run(make(), *seq), run(make(), *seq)
    assert snap(a) == snap(b)
    assert a.step("plan").status == "pending" and a.status == "idle"


def test_derive_status_without_steps() -> None:
    wf = Workflow(id="w", name="w", created_at=T0, updated_at=T0)
    assert derive_status(wf) == "idle"


def test_atomicity_check_catches_a_partial_mutation(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the validate-then-mutate protection off, ``refused`` notices the damage."""
    from claude_state.domain import ops as ops_mod

    def careless(wf: Workflow, op: dict[str, Any], at: str, ready: Any) -> None:
        wf.data["half"] = "written"
        raise TransitionError("too late")

    monkeypatch.setitem(ops_mod._APPLIERS, "pause", careless)
    with pytest.raises(AssertionError):
        refused(make(), op_pause(t(1)), TransitionError)
