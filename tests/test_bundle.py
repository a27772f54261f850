"""Export/import bundles: round trip, and damaged bundles refused with nothing written."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from _session_helpers import SID, append, ev

from claude_state.clock import now_iso
from claude_state.domain import bundle, ops
from claude_state.domain.definition import parse_definition
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.errors import BundleError, ConflictError, NotFoundError
from claude_state.storage import frame, journal
from claude_state.storage.layout import StateDir

WID = "wf-export"
BIG = "payment client output line\n" * 4000  # ~100 KB: stored as a blob


@pytest.fixture
def src(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> StateDir:
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")
    state = StateDir(str(tmp_path / "src")).ensure()
    append(
        state,
        SID,
        ev("SessionStart", source="startup"),
        ev("UserPromptSubmit", prompt="export me"),
        ev("PreToolUse", tool_name="Bash", tool_input={"command": "make"}, tool_use_id="t1"),
    )
    store = SessionStore(state)
    store.catch_up(SID)
    append(
        state,
        SID,
        ev("PostToolUse", tool_name="Bash", tool_use_id="t1", tool_response={"stdout": "ok"}),
    )
    wfs = WorkflowStore(state)
    wfs.create(parse_definition({"id": WID, "steps": [{"id": "a"}, {"id": "b", "deps": ["a"]}]}))
    wfs.apply(WID, ops.op_owner(SID, 1, now_iso()))
    wfs.apply(WID, ops.op_step("a", "completed", output=BIG, at=now_iso()))
    store.note_workflow(SID, WID, "b")
    from claude_state.domain.checkpoints import CheckpointStore

    cps = CheckpointStore(state, workflows=wfs)
    cps.create(WID, type="manual", tags=("t1",))
    wfs.apply(WID, ops.op_set_data("k", 1, now_iso()))
    cps.create(WID)  # incremental: its parent travels with it
    return state


@pytest.fixture
def dst(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "dst")).ensure()


def snapshot(state: StateDir) -> dict[str, bytes]:
    out = {}
    for root, _dirs, files in os.walk(state.root):
        for name in files:
            if name.endswith(".lock"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, state.root)] = f.read()
    return out


def test_round_trip(src: StateDir, dst: StateDir) -> None:
    data = bundle.export_bytes(src, SID)
    result = bundle.import_bundle(dst, data)
    assert result.imported and result.workflows == [WID] and result.blobs == 1
    assert result.events == 4
    s_store, d_store = SessionStore(src), SessionStore(dst)
    assert d_store.load(SID).to_dict() == s_store.load(SID).to_dict()
    assert d_store.peek(SID).to_dict() == s_store.peek(SID).to_dict()
    assert journal.read(dst, SID) == journal.read(src, SID)
    wf_src, wf_dst = WorkflowStore(src), WorkflowStore(dst)
    assert wf_dst.load(WID).to_dict() == wf_src.load(WID).to_dict()
    assert wf_dst.output(WID, "a") == BIG
    from claude_state.domain.checkpoints import CheckpointStore

    cps = CheckpointStore(dst, workflows=wf_dst)
    assert len(cps.list(WID)) == result.checkpoints == 2
    # importing again is a no-op; appending more new journal events conflicts
    assert bundle.import_bundle(dst, data).imported is False
    append(dst, SID, ev("Stop"))
    with pytest.raises(ConflictError):
        bundle.import_bundle(dst, data)
    newest = max(cps.list(WID), key=lambda c: c["created_at"])
    restored = cps.restore(newest["id"])
    assert restored["workflow_id"] == WID


def test_export_unknown_session(src: StateDir) -> None:
    with pytest.raises(NotFoundError):
        bundle.export_bytes(src, "nope")


def test_truncated_at_every_offset_is_refused(src: StateDir, dst: StateDir) -> None:
    data = bundle.export_bytes(src, SID)
    before = snapshot(dst)
    for n in range(len(data)):
        with pytest.raises(BundleError):
            bundle.import_bundle(dst, data[:n])
    with pytest.raises(BundleError):
        bundle.import_bundle(dst, data + b"\0")
    assert snapshot(dst) == before


def test_bit_flips_are_refused(src: StateDir, dst: StateDir) -> None:
    data = bundle.export_bytes(src, SID)
    before = snapshot(dst)
    positions = list(range(min(len(data), 64) * 8))  # every bit of the header and beyond
    positions += list(range(64 * 8, len(data) * 8, 61))  # a spread over the payload
    for bit in positions:
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BundleError):
            bundle.import_bundle(dst, bytes(damaged))
    assert snapshot(dst) == before


def reframe(data: bytes, change: Any) -> bytes:
    """A well-checksummed bundle whose content was altered (a forged bundle)."""
    _h, doc = frame.decode_doc(data, frame.Kind.BUNDLE)
    change(doc)
    return frame.encode_doc(frame.Kind.BUNDLE, doc)


@pytest.mark.parametrize(
    "name",
    [
        "path-escape",
        "blob-digest",
        "missing-blob",
        "checkpoint",
        "journal-gap",
        "not-a-bundle",
        "session-id",
    ],
)
def test_forged_content_is_refused(src: StateDir, dst: StateDir, name: str) -> None:
    data = bundle.export_bytes(src, SID)

    def change(doc: dict[str, Any]) -> None:
        if name == "path-escape":
            doc["workflows"][0]["id"] = "../../etc"
        elif name == "blob-digest":
            h = next(iter(doc["blobs"]))
            doc["blobs"][h] = base64.b64encode(b"other").decode()
        elif name == "missing-blob":
            doc["blobs"] = {}
        elif name == "checkpoint":
            doc["checkpoints"] = [{"workflow_id": WID, "id": "c1", "frame": "AAAA"}]
        elif name == "journal-gap":
            doc["journal"][1][0] = 7
        elif name == "not-a-bundle":
            doc["format"] = "something"
        elif name == "session-id":
            doc["session_id"] = "../x"

    before = snapshot(dst)
    with pytest.raises(BundleError):
        bundle.import_bundle(dst, reframe(data, change))
    assert snapshot(dst) == before


def test_existing_workflow_with_other_content_conflicts(src: StateDir, dst: StateDir) -> None:
    data = bundle.export_bytes(src, SID)
    WorkflowStore(dst).create(parse_definition({"id": WID, "steps": [{"id": "z"}]}))
    before = snapshot(dst)
    with pytest.raises(ConflictError):
        bundle.import_bundle(dst, data)
    assert snapshot(dst) == before


def test_export_to_file(src: StateDir, tmp_path: Any) -> None:
    path = str(tmp_path / "out.bundle")
    n = bundle.export_session(src, SID, path)
    assert os.path.getsize(path) == n
    with open(path, "rb") as f:
        assert bundle.verify_bundle(f.read()).session_id == SID


def test_import_never_replaces_a_session_that_appears_meanwhile(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook journals the first event of the same session id after import's conflict
    check, before its writes: the import is refused and that event survives."""
    src = StateDir(tmp_path / "src").ensure()
    first = b'{"session_id":"sess-1","hook_event_name":"Stop"}'
    journal.append(src, "sess-1", [journal.wrap(first)])
    data = bundle.export_bytes(src, "sess-1")
    dst = StateDir(tmp_path / "dst").ensure()
    real = bundle.blobmod.BlobStore
    late = b'{"session_id":"sess-1","hook_event_name":"UserPromptSubmit"}'

    def race(state: StateDir) -> Any:  # the write phase begins: a hook gets in first
        journal.append(dst, "sess-1", [journal.wrap(late)])
        return real(state)

    monkeypatch.setattr(bundle.blobmod, "BlobStore", race)
    with pytest.raises(ConflictError, match="appeared while importing"):
        bundle.import_bundle(dst, data)
    events = journal.read(dst, "sess-1")
    assert len(events) == 1 and b"UserPromptSubmit" in events[0][1]
