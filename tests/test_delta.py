"""Property and shape tests of the structural delta used by incremental checkpoints."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_state.domain.delta import diff, patch
from claude_state.errors import IntegrityError

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=4)
)
_keys = st.sampled_from(["a", "b", "c", "d", "$blob", "size"])
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


def _bytes(v: Any) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, json_values)
def test_patch_of_diff_gives_the_new_value(a: Any, b: Any) -> None:
    """The defining property, checked strictly (1, 1.0 and true are different values)."""
    before = _bytes(a)
    d = diff(a, b)
    out = patch(a, orjson.loads(orjson.dumps(d)))  # the delta survives being stored
    assert out == b
    assert _bytes(out) == _bytes(b)
    assert _bytes(a) == before  # neither input is modified


@settings(max_examples=300)
@given(st.lists(json_values, max_size=8), st.integers(0, 8), st.lists(json_values, max_size=4))
def test_bounded_log_shift(log: list[Any], drop: int, extra: list[Any]) -> None:
    """A bounded history (front dropped, tail appended) patches back exactly."""
    new = log[drop:] + extra
    assert _bytes(patch(log, diff(log, new))) == _bytes(new)


def test_equal_values_give_an_empty_delta() -> None:
    doc = {"a": [1, 2, {"b": "x"}], "c": None}
    assert diff(doc, orjson.loads(orjson.dumps(doc))) == {}
    assert patch(doc, {}) is doc


def test_type_changes_under_python_equality_are_changes() -> None:
    assert diff({"k": [1]}, {"k": [True]}) != {}
    assert patch({"k": [1]}, diff({"k": [1]}, {"k": [True]})) == {"k": [True]}
    assert type(patch({"k": 1}, diff({"k": 1}, {"k": 1.0}))["k"]) is float


def test_appended_history_stores_only_the_new_entries() -> None:
    hist = [{"at": f"t{i}", "event": "step", "step": f"s{i}"} for i in range(200)]
    new = hist[3:] + [
        {"at": "t200", "event": "x"},
        {"at": "t201", "event": "y"},
        {"at": "t202", "event": "z"},
    ]
    d = diff({"history": hist}, {"history": new})
    assert d == {"d": {"history": {"t": 3, "a": new[-3:]}}}


def test_one_changed_step_is_stored_alone() -> None:
    steps = [{"id": f"s{i}", "status": "pending", "output": "x" * 1000} for i in range(50)]
    new = [dict(s) for s in steps]
    new[7] = {**new[7], "status": "completed"}
    d = diff({"steps": steps}, {"steps": new})
    assert d == {"d": {"steps": {"l": {"7": {"d": {"status": {"r": "completed"}}}}}}}
    assert len(orjson.dumps(d)) < 100


def test_blob_references_are_replaced_whole() -> None:
    """A new digest must appear inside a reference, where gc marking finds it."""
    old = {"output": {"$blob": "a" * 32, "size": 10}}
    new = {"output": {"$blob": "b" * 32, "size": 10}}
    assert diff(old, new) == {"d": {"output": {"r": new["output"]}}}


@pytest.mark.parametrize(
    ("old", "delta"),
    [
        ({"a": 1}, "nope"),
        ({"a": 1}, {"d": {"b": {"d": {}}}}),
        ({"a": 1}, {"x": ["zz"]}),
        ([1, 2], {"t": 5}),
        ([1, 2], {"l": {"9": {"r": 1}}}),
        ([1, 2], {"l": {"q": {"r": 1}}}),
        ([1, 2], {"k": -1}),
        ("text", {"d": {}}),
        ({"a": 1}, {"a": [1]}),
    ],
)
def test_malformed_or_mismatched_deltas_are_integrity_errors(old: Any, delta: Any) -> None:
    with pytest.raises(IntegrityError):
        patch(old, delta)
