"""Tests for the workflow document model, its JSON form, schema migration and the clock."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_state import clock
from claude_state.domain.model import (
    MAX_HISTORY,
    SCHEMA_VERSION,
    STEP_STATUSES,
    WORKFLOW_STATUSES,
    Step,
    Workflow,
    json_copy,
    migrate,
)
from claude_state.errors import InvalidInputError, NotFoundError

T0 = "2025-01-01T00:00:00.000Z"

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
stamps = st.none() | st.just(T0) | st.just("2025-06-01T12:30:00.250Z")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    return Step(
        id=draw(ids),
        name=draw(st.text(max_size=10)),
        deps=draw(st.lists(ids, max_size=3)),
        status=draw(st.sampled_from(STEP_STATUSES)),
        attempts=draw(st.integers(0, 5)),
        max_retries=draw(st.integers(0, 5)),
        timeout=draw(st.none() | st.floats(0.001, 1e6)),
        agent=draw(st.none() | st.text(max_size=5)),
        output=draw(json_values),
        error=draw(st.none() | st.text(max_size=10)),
        agent_state=draw(json_objects),
        started_at=draw(stamps),
        finished_at=draw(stamps),
        tool_calls=draw(st.lists(json_objects, max_size=3)),
    )


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    owner = draw(
        st.none() | st.builds(lambda s, e: {"session_id": s, "epoch": e}, ids, st.integers(0, 9))
    )
    return Workflow(
        id=draw(ids),
        name=draw(st.text(max_size=10)),
        created_at=T0,
        updated_at=draw(st.sampled_from([T0, "2025-02-02T00:00:00.001Z"])),
        steps=draw(st.lists(steps(), max_size=4)),
        status=draw(st.sampled_from(WORKFLOW_STATUSES)),
        data=draw(json_objects),
        owner=owner,
        parent_id=draw(st.none() | ids),
        history=draw(st.lists(st.fixed_dictionaries({"at": st.just(T0), "event": ids}))),
        metrics=draw(json_objects),
        finish_order=draw(st.lists(ids, max_size=3)),
        revision=draw(st.integers(0, 1000)),
    )


# -- round trips ------------------------------------------------------------------------


@given(workflows())
@settings(max_examples=100, deadline=None)
def test_workflow_round_trip(wf: Workflow) -> None:
    d = wf.to_dict()
    again = Workflow.from_dict(d)
    assert again == wf
    assert again.to_dict() == d
    # Through the real bytes too: what storage writes must read back the same.
    assert Workflow.from_dict(orjson.loads(orjson.dumps(d))).to_dict() == d


@given(steps())
def test_step_round_trip(step: Step) -> None:
    assert Step.from_dict(step.to_dict()) == step


def test_to_dict_is_a_fresh_copy() -> None:
    wf = Workflow(id="w", name="w", created_at=T0, updated_at=T0, steps=[Step("a", "a")])
    wf.steps[0].output = {"x": [1]}
    d = wf.to_dict()
    d["steps"][0]["output"]["x"].append(2)
    d["data"]["k"] = 1
    assert wf.steps[0].output == {"x": [1]}
    assert wf.data == {}


def test_to_dict_has_schema() -> None:
    wf = Workflow(id="w", name="w", created_at=T0, updated_at=T0)
    assert wf.to_dict()["schema"] == SCHEMA_VERSION == 1


# -- queries ----------------------------------------------------------------------------


def _wf(*statuses: str, deps: dict[str, list[str]] | None = None) -> Workflow:
    deps = deps or {}
    names = "abcdefgh"
    st_ = [
        Step(names[i], names[i], deps=deps.get(names[i], []), status=s)
        for i, s in enumerate(statuses)
    ]
    return Workflow(id="w", name="w", created_at=T0, updated_at=T0, steps=st_)


def test_progress() -> None:
    assert _wf().progress == 0.0
    assert _wf("pending", "pending").progress == 0.0
    assert _wf("completed", "skipped", "failed").progress == 66.7
    assert _wf("completed", "running", "pending").progress == 33.3
    assert _wf("completed", "skipped").progress == 100.0


def test_current_step_prefers_running_then_ready_pending() -> None:
    wf = _wf("pending", "pending", "running", deps={"a": ["c"]})
    assert wf.current_step == "c"
    wf = _wf("pending", "pending", deps={"a": ["b"]})
    assert wf.current_step == "b"
    wf = _wf("completed", "pending", deps={"b": ["a"]})
    assert wf.current_step == "b"
    assert _wf("completed", "failed").current_step is None
    assert _wf().current_step is None


def test_step_lookup() -> None:
    wf = _wf("pending")
    assert wf.step("a").id == "a"
    assert wf.has_step("a") and not wf.has_step("zz")
    with pytest.raises(NotFoundError) as ei:
        wf.step("zz")
    assert ei.value.kind == "step" and ei.value.id == "zz"
    assert ei.value.exit_code == 3


def test_exhausted() -> None:
    s = Step("a", "a", status="failed", attempts=2, max_retries=1)
    assert s.exhausted
    s.attempts = 1
    assert not s.exhausted
    s.attempts, s.status = 5, "running"
    assert not s.exhausted


# -- json_copy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        (1, 2),
        math.nan,
        math.inf,
        {1: "x"},
        {"a": object()},
        b"bytes",
        {"s": {1, 2}},
        2**64,
        -(2**63) - 1,
    ],  # fmt: skip
)
def test_json_copy_refuses_non_json(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        json_copy(bad, "thing")


def test_json_copy_refuses_absurd_nesting() -> None:
    v: Any = []
    for _ in range(500):
        v = [v]
    with pytest.raises(InvalidInputError, match="nested"):
        json_copy(v)


@given(json_values)
def test_json_copy_is_equal_and_independent(v: Any) -> None:
    c = json_copy(v)
    assert c == v
    if isinstance(v, dict | list):
        assert c is not v


# -- from_dict validation --------------------------------------------------------------


def _good() -> dict[str, Any]:
    return Workflow(
        id="w", name="w", created_at=T0, updated_at=T0, steps=[Step("a", "a")]
    ).to_dict()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(status="weird"),
        lambda d: d.pop("id"),
        lambda d: d.update(steps="nope"),
        lambda d: d.update(revision=True),
        lambda d: d.update(owner={"session_id": "s"}),
        lambda d: d.update(owner={"session_id": "s", "epoch": True}),
        lambda d: d.update(history=[1]),
        lambda d: d.update(data=[]),
        lambda d: d["steps"][0].update(status="done"),
        lambda d: d["steps"][0].update(deps=[1]),
        lambda d: d["steps"][0].update(attempts="1"),
        lambda d: d["steps"][0].update(tool_calls=["x"]),
        lambda d: d["steps"][0].pop("name"),
        lambda d: d["steps"].append(7),
    ],
)
def test_from_dict_refuses_malformed(mutate: Any) -> None:
    d = _good()
    mutate(d)
    with pytest.raises(InvalidInputError):
        Workflow.from_dict(d)


def test_from_dict_refuses_non_object() -> None:
    with pytest.raises(InvalidInputError):
        Workflow.from_dict([1, 2])


# -- migration --------------------------------------------------------------------------


def _schema0() -> dict[str, Any]:
    return {
        "id": "old",
        "status": "running",
        "created_at": 1735689600,
        "steps": [
            {"id": "a", "status": "completed", "result": {"x": 1}, "finished_at": 1735689700.5},
            {
                "id": "b",
                "dependencies": ["a"],
                "retries": 3,
                "status": "skipped",
                "finished_at": 1735689650,
            },  # fmt: skip
            {"id": "c", "dependencies": ["a", "b"], "status": "pending"},
        ],
    }


def test_migrate_schema0() -> None:
    doc = _schema0()
    before = orjson.dumps(doc)
    wf = Workflow.from_dict(doc)
    assert orjson.dumps(doc) == before, "migration must not modify its input"
    assert wf.schema == SCHEMA_VERSION
    assert wf.name == "old"
    assert wf.created_at == "2025-01-01T00:00:00.000Z" == wf.updated_at
    a, b, c = wf.steps
    assert a.output == {"x": 1} and a.finished_at == "2025-01-01T00:01:40.500Z"
    assert b.deps == ["a"] and b.max_retries == 3
    assert c.deps == ["a", "b"] and c.max_retries == 0 and c.attempts == 0
    assert wf.finish_order == ["b", "a"]  # reconstructed from finish times
    assert wf.owner is None and wf.history == [] and wf.data == {}
    assert wf.metrics == {"transitions": 0, "failures": 0, "steps": {}}
    # and the result is a stable schema-1 document
    assert Workflow.from_dict(wf.to_dict()) == wf


def test_migrate_current_is_identity_copy() -> None:
    d = _good()
    out = migrate(d)
    assert out == d and out is not d


@pytest.mark.parametrize("schema", [SCHEMA_VERSION + 1, 99])
def test_newer_schema_refused(schema: int) -> None:
    d = _good()
    d["schema"] = schema
    with pytest.raises(InvalidInputError, match="newer") as ei:
        Workflow.from_dict(d)
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("schema", ["1", -1, True, None, 1.0])
def test_invalid_schema_refused(schema: Any) -> None:
    d = _good()
    d["schema"] = schema
    with pytest.raises(InvalidInputError, match="schema"):
        migrate(d)


def test_history_bound_constant() -> None:
    assert MAX_HISTORY == 200


# -- clock ------------------------------------------------------------------------------


def test_now_iso_format_and_parse() -> None:
    s = clock.now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s)
    assert abs(clock.parse_iso(s) - clock.now()) < 5


def test_parse_iso_variants() -> None:
    assert clock.parse_iso("2025-01-01T00:00:00.000Z") == 1735689600.0
    assert clock.parse_iso("2025-01-01T00:00:00") == 1735689600.0  # naive = UTC
    assert clock.parse_iso("2025-01-01T01:00:00+01:00") == 1735689600.0
    assert clock.to_iso(1735689600.25) == "2025-01-01T00:00:00.250Z"


@pytest.mark.parametrize("bad", ["", "yesterday", "2025-13-01T00:00:00Z", 5, None])
def test_parse_iso_refuses(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        clock.parse_iso(bad)


@given(st.floats(0, 4e9))
def test_iso_round_trip(t: float) -> None:
    assert abs(clock.parse_iso(clock.to_iso(t)) - t) < 0.001
