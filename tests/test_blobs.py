"""Content-addressed blobs: dedupe, verified reads, lazy loading, reference collection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.storeutil import T0, make_workflow, new_store

from claude_state.domain.ops import op_set_data, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.errors import FrameError, NotFoundError
from claude_state.storage import blobs
from claude_state.storage.blobs import BlobStore, collect_refs, is_ref
from claude_state.storage.layout import StateDir


def test_put_get_and_dedupe(tmp_path: Path) -> None:
    bs = BlobStore(StateDir(tmp_path).ensure())
    data = b"pytest output\n" * 5000
    r1 = bs.put(data)
    r2 = bs.put(data)
    assert r1 == r2 and r1["size"] == len(data) and is_ref(r1)
    assert list(bs) == [r1["$blob"]]
    assert bs.get(r1) == data and bs.get(r1["$blob"]) == data
    assert os.path.getsize(StateDir(tmp_path).blob(r1["$blob"])) < len(data) // 10
    r3 = bs.put(data + b"!")
    assert r3 != r1 and sorted(bs) == sorted([r1["$blob"], r3["$blob"]])
    assert bs.delete(r3["$blob"]) and not bs.exists(r3["$blob"])
    with pytest.raises(NotFoundError):
        bs.get(r3)


def test_value_round_trip_and_externalize(tmp_path: Path) -> None:
    bs = BlobStore(StateDir(tmp_path).ensure())
    small = {"a": 1}
    assert bs.externalize(small, 100) is small
    assert bs.externalize(None) is None and bs.externalize(5) == 5
    big = {"lines": ["x" * 80] * 100}
    ref = bs.externalize(big, 100)
    assert is_ref(ref) and bs.resolve(ref) == big and bs.resolve(small) == small


@pytest.mark.parametrize("where", ["header", "payload", "end"])
def test_damaged_blob_is_refused(tmp_path: Path, where: str) -> None:
    state = StateDir(tmp_path).ensure()
    bs = BlobStore(state)
    ref = bs.put(os.urandom(5000))
    path = Path(state.blob(ref["$blob"]))
    data = bytearray(path.read_bytes())
    off = {"header": 10, "payload": 200, "end": len(data) - 1}[where]
    data[off] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(FrameError):
        bs.get(ref)


def test_blob_swapped_for_another_valid_blob(tmp_path: Path) -> None:
    """A valid frame under the wrong name: only the digest check catches it."""
    state = StateDir(tmp_path).ensure()
    bs = BlobStore(state)
    a, b = bs.put(b"A" * 3000), bs.put(b"B" * 3000)
    Path(state.blob(a["$blob"])).write_bytes(Path(state.blob(b["$blob"])).read_bytes())
    with pytest.raises(FrameError, match="digest"):
        bs.get(a)


def test_invalid_digest_never_builds_a_path(tmp_path: Path) -> None:
    from claude_state.errors import InvalidIdError

    bs = BlobStore(StateDir(tmp_path).ensure())
    for bad in ("../../etc/passwd", "A" * 32, "0" * 31, ""):
        with pytest.raises(InvalidIdError):
            bs.get(bad)


def test_lazy_load_through_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, store = new_store(tmp_path, blob_threshold=2000)
    store.create(make_workflow("wf1"))
    log = "PASSED tests/test_x.py::test_%d\n" * 1
    big = "".join(log % i for i in range(2000))
    store.apply("wf1", op_step("s0", "completed", output=big, at=T0))
    store.apply("wf1", op_set_data("report", {"text": big * 2}, T0))
    reads: list[str] = []
    real = BlobStore.get

    def spy(self: BlobStore, ref: object) -> bytes:
        reads.append(str(ref))
        return real(self, ref)  # type: ignore[arg-type]

    monkeypatch.setattr(BlobStore, "get", spy)
    wf = WorkflowStore(state).load("wf1")
    assert reads == []  # the load reads no blob
    assert is_ref(wf.step("s0").output) and is_ref(wf.data["report"])
    assert WorkflowStore(state).output("wf1", "s0") == big
    assert len(reads) == 1
    assert store.resolve(wf.data["report"]) == {"text": big * 2}
    assert collect_refs(wf.to_dict()) == {wf.step("s0").output["$blob"], wf.data["report"]["$blob"]}


def test_save_moves_large_values_to_blobs(tmp_path: Path) -> None:
    state, store = new_store(tmp_path, blob_threshold=1000)
    wf = make_workflow("wf1", data={"log": "y" * 50_000, "small": 1})
    store.create(wf)
    assert os.path.getsize(state.workflow_state("wf1")) < 2000
    loaded = WorkflowStore(state).load("wf1")
    assert loaded.data["small"] == 1 and store.resolve(loaded.data["log"]) == "y" * 50_000


def test_collect_refs() -> None:
    h1, h2 = "a" * 32, "b" * 32
    value = {
        "x": [{"$blob": h1, "size": 3}, {"deep": {"$blob": h2, "size": 9}}],
        "not_a_ref": {"$blob": h1, "size": 1, "other": 2, "more": 3},
        "n": 1,
    }
    assert collect_refs(value) == {h1, h2}
    assert collect_refs([]) == set() and collect_refs("$blob") == set()
    assert blobs.is_ref({"$blob": h1}) and not blobs.is_ref([h1])
