"""User values round-trip exactly, whatever their shape (issue 15: values shaped like blob
references were taken for them).

A property test sends arbitrary JSON (with objects keyed ``$blob``, ``$esc``, ``$ref``,
real digests among the values) through the store, a checkpoint and its restore, and a
bundle export/import; a control shows that with escaping switched off it fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from _session_helpers import SID, append, ev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_state.clock import now_iso
from claude_state.domain import bundle, ops, userdata
from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.errors import ClaudeStateError, InvalidInputError
from claude_state.storage.layout import StateDir

WID = "wf-rt"
#: Small, so that many generated values also take the blob path.
THRESHOLD = 200
OTHER = "another blob's content " * 40  # stored first: a digest a forged ref can name


def _digest_of_other() -> str:
    return userdata.collect_refs(_blob_ref_for(OTHER)).pop()


def _blob_ref_for(value: Any) -> Any:
    from claude_state.storage.blobs import digest
    from claude_state.storage.frame import dumps

    data = dumps(value)
    return {"$blob": digest(data), "size": len(data)}


KEYS = st.one_of(
    st.sampled_from(["$blob", "$esc", "$ref", "size", "a"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["x", "0" * 32, _digest_of_other()]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=4),
        # the exact shape of a reference, naming an existing blob
        st.fixed_dictionaries({"$blob": st.sampled_from([_digest_of_other(), "x"])}).map(
            lambda d: {**d, "size": 3}
        ),
    ),
    max_leaves=40,
)


def _same(a: Any, b: Any) -> bool:
    """Strict JSON equality (``1`` and ``true`` differ; key order kept)."""
    return orjson.dumps(a) == orjson.dumps(b)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")


@pytest.fixture
def tmp() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield d


def round_trip(root: str, value: Any) -> list[str]:
    """Send *value* through every path; the list of places where it came back changed."""
    bad: list[str] = []
    src = StateDir(os.path.join(root, "src")).ensure()
    append(src, SID, ev("SessionStart", source="startup"))
    SessionStore(src).catch_up(SID)
    wfs = WorkflowStore(src, blob_threshold=THRESHOLD)
    wfs.blobs.put_value(OTHER)
    wfs.create(parse_definition({"id": WID, "steps": [{"id": "a"}], "data": {"d0": value}}))
    wfs.apply(WID, ops.op_owner(SID, 1, now_iso()))
    wfs.apply(WID, ops.op_step("a", "running", at=now_iso()))
    wfs.apply(WID, ops.op_step("a", "completed", output=value, at=now_iso()))
    wfs.apply(WID, ops.op_set_data("k", value, now_iso()))

    def check(store: WorkflowStore, where: str, k: Any = value) -> None:
        try:
            wf = store.load(WID)
            got = {
                "output": (store.resolve(wf.step("a").output), value),
                "data": (store.resolve(wf.data["k"]), k),
                "created": (store.resolve(wf.data["d0"]), value),
            }
        except ClaudeStateError as exc:
            bad.append(f"{where}: {exc}")
            return
        for key, (v, want) in got.items():
            if not _same(v, want):
                bad.append(f"{where} {key}: {v!r}")

    check(wfs, "live")
    check(WorkflowStore(src, blob_threshold=THRESHOLD), "reloaded")
    cps = CheckpointStore(src, workflows=wfs)
    cid = cps.create(WID)["id"]
    wfs.apply(WID, ops.op_set_data("k", "changed", now_iso()))
    inc = cps.create(WID)["id"]  # incremental on top: its delta crosses the user value
    if cps.verify(WID):
        bad.append(f"checkpoint verify: {cps.verify(WID)}")
    cps.restore(inc)
    check(WorkflowStore(src, blob_threshold=THRESHOLD), "restored incremental", "changed")
    cps.restore(cid)
    check(WorkflowStore(src, blob_threshold=THRESHOLD), "restored")
    try:
        data = bundle.export_bytes(src, SID)
        dst = StateDir(os.path.join(root, "dst")).ensure()
        bundle.import_bundle(dst, data)
    except ClaudeStateError as exc:
        bad.append(f"bundle: {exc}")
    else:
        check(WorkflowStore(dst), "imported")
    return bad


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=JSON)
def test_any_json_value_round_trips(value: Any) -> None:
    with tempfile.TemporaryDirectory() as root:
        assert round_trip(root, value) == []


@pytest.mark.parametrize(
    "value",
    [
        {"$blob": "x"},
        {"$esc": {"$blob": "x"}},
        [{"$ref": {"$blob": "0" * 32, "size": 3}}],
        {"nested": {"$blob": "0" * 32, "size": 3}, "big": "y" * 500},
        {"$esc": {}},
    ],
)
def test_reference_shaped_values_round_trip(tmp: str, value: Any) -> None:
    assert round_trip(tmp, value) == []


def test_existing_digest_is_not_read_back(tmp: str) -> None:
    forged = {"$blob": _digest_of_other(), "size": 3}
    assert round_trip(tmp, forged) == []


def test_control_without_escaping_the_value_is_taken_for_a_reference(
    tmp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protection off (escape and unescape made identities): the same round trip
    reads another blob's content back, so the property test can fail."""
    import claude_state.domain.store as store_mod

    monkeypatch.setattr(store_mod, "escape_op", lambda op, payload: op)
    monkeypatch.setattr(store_mod, "may_need_escape", lambda data: False)
    monkeypatch.setattr(store_mod, "unescape", lambda v: v)
    bad = round_trip(tmp, {"$blob": _digest_of_other(), "size": 3})
    assert any(OTHER in b for b in bad), bad


def test_reserved_data_keys_are_refused(tmp: str) -> None:
    state = StateDir(tmp).ensure()
    wfs = WorkflowStore(state)
    wfs.create(parse_definition({"id": WID, "steps": [{"id": "a"}]}))
    with pytest.raises(InvalidInputError, match="reserved"):
        wfs.apply(WID, ops.op_set_data("$blob", "0" * 32, now_iso()))
    with pytest.raises(InvalidInputError, match="reserved"):
        wfs.create(parse_definition({"id": "wf-2", "steps": [{"id": "a"}], "data": {"$esc": 1}}))
    assert wfs.load(WID).data == {}


def test_escape_is_free_for_ordinary_values() -> None:
    value = {"a": [1, {"b": "c"}], "s": "$blob"}  # a string is not a key
    assert userdata.escape(value) is value
    assert userdata.unescape(value) is value
