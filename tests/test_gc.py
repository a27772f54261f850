"""gc: retention of checkpoints, ended sessions, mark-and-sweep of blobs with a grace period."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_state.domain import leases
from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.gc import BLOB_GRACE_SECONDS, collect, parse_duration
from claude_state.domain.ops import op_set_data, op_step
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.store import WorkflowStore
from claude_state.errors import InvalidInputError
from claude_state.storage import frame, journal
from claude_state.storage.blobs import BlobStore
from claude_state.storage.docfile import write_doc
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

T = "2026-01-01T00:00:00.000Z"
OLD = time.time() - 10 * 86400


def age(path: str, when: float = OLD) -> None:
    os.utime(path, (when, when))


def age_all_blobs(state: StateDir) -> None:
    for h in BlobStore(state):
        age(state.blob(h))


def new_state(tmp_path: Path) -> tuple[StateDir, WorkflowStore]:
    state = StateDir(tmp_path / "state").ensure()
    return state, WorkflowStore(state, blob_threshold=1000)


def session(
    state: StateDir,
    sid: str,
    status: str,
    *,
    when: float = OLD,
    extra: dict[str, object] | None = None,
) -> None:
    rec = {"id": sid, "status": status, "ended_at": when, "last_activity": when, **(extra or {})}
    write_doc(state.session_record(sid), frame.Kind.SESSION, rec, state.temp)
    age(state.session_record(sid), when)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("45", 45)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "5x", "-5m", "1.5h", "soon", "7 d d", "1e3s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_duration(text)


def test_blobs_referenced_anywhere_survive_and_orphans_go(tmp_path: Path) -> None:
    state, store = new_state(tmp_path)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}, {"id": "b"}]}, at=T))
    store.apply("w", op_step("a", "completed", output={"doc": "A" * 5000}, at=T))
    cps = CheckpointStore(state, store)
    cps.create("w")
    # replaced output: the old blob stays referenced by the checkpoint only
    store.apply("w", op_set_data("k", "D" * 5000, T))
    blobs = BlobStore(state)
    orphan = blobs.put(b"nobody refers to me")["$blob"]
    young = blobs.put(b"just written, not yet referenced")["$blob"]
    in_journal = blobs.put(b"a tool output in a journal event")["$blob"]
    journal.append(
        state,
        "s1",
        [
            journal.wrap(
                b'{"hook_event_name":"PostToolUse","tool_response":{"$blob":"'
                + in_journal.encode()
                + b'","size":3}}'
            )
        ],
    )
    session(state, "s1", "active")
    in_record = blobs.put(b"in a session record")["$blob"]
    session(state, "s2", "active", extra={"note": {"$blob": in_record, "size": 1}})
    age_all_blobs(state)
    age(state.blob(young), time.time())
    before = set(blobs)

    dry = collect(state, dry_run=True)
    assert dry["blobs_removed"] == 1 and set(blobs) == before
    rep = collect(state)
    assert rep["blobs_removed"] == 1 and rep["bytes_freed"] > 0 and rep["warnings"] == []
    assert set(blobs) == before - {orphan}
    # everything still resolves
    assert store.output("w", "a") == {"doc": "A" * 5000}
    assert store.resolve(store.load("w").data["k"]) == "D" * 5000
    assert CheckpointStore(state, store).verify() == []


def test_blob_grace_period_and_reuse_refreshes_it(tmp_path: Path) -> None:
    """A blob put long ago and re-put now (a new writer about to reference it) must
    survive: ``BlobStore.put`` refreshes its mtime."""
    state, _store = new_state(tmp_path)
    blobs = BlobStore(state)
    h = blobs.put(b"reused")["$blob"]
    age(state.blob(h))
    blobs.put(b"reused")
    assert time.time() - os.stat(state.blob(h)).st_mtime < BLOB_GRACE_SECONDS
    assert collect(state)["blobs_removed"] == 0
    # protection off: an old orphan does go
    age(state.blob(h))
    assert collect(state)["blobs_removed"] == 1 and h not in set(blobs)


def test_checkpoint_blobs_are_freed_with_their_checkpoints(tmp_path: Path) -> None:
    state, store = new_state(tmp_path)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}]}, at=T))
    store.apply("w", op_set_data("k", "1" * 5000, T))
    cps = CheckpointStore(state, store, full_every=1)
    cps.create("w")
    store.apply("w", op_set_data("k", "2" * 5000, T))
    cps.create("w")
    age_all_blobs(state)
    assert collect(state)["blobs_removed"] == 0
    rep = collect(state, keep=1)
    assert len(rep["checkpoints_removed"]) == 1 and rep["blobs_removed"] == 1
    assert store.resolve(store.load("w").data["k"]) == "2" * 5000


def test_unreadable_workflow_skips_the_sweep(tmp_path: Path) -> None:
    state, store = new_state(tmp_path)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}]}, at=T))
    store.apply("w", op_set_data("k", "1" * 5000, T))
    store.save(store.load("w"))  # the reference now lives in the snapshot only
    BlobStore(state).put(b"orphan")
    age_all_blobs(state)
    snap = state.workflow_state("w")
    data = bytearray(Path(snap).read_bytes())
    data[-2] ^= 0xFF
    Path(snap).write_bytes(bytes(data))
    os.unlink(snap + ".prev") if os.path.exists(snap + ".prev") else None
    rep = collect(state)
    assert rep["blobs_removed"] == 0 and "w" in rep["warnings"][0]
    assert len(list(BlobStore(state))) == 2


def test_ended_sessions_older_than_the_duration_go(tmp_path: Path) -> None:
    state, _store = new_state(tmp_path)
    session(state, "ended-old", "ended")
    session(state, "recovered-old", "recovered")
    session(state, "ended-new", "ended", when=time.time())
    session(state, "active-old", "active")
    journal.append(state, "ended-old", [journal.wrap(b'{"hook_event_name":"Stop"}')])
    for sid in ("ended-old",):
        for p in (state.session_wal(sid), state.session_lock(sid)):
            if os.path.exists(p):
                age(p)
    # a live lease (ours) protects a session even when its record says ended
    session(state, "ended-live", "ended")
    leases.acquire(state, "ended-live", ProcessIdentity.current())
    for p in (state.lease("ended-live"), state.session_lock("ended-live")):
        age(p)
    # a lease of a dead process does not
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = ProcessIdentity.current(child.pid)
    finally:
        child.kill()
        child.wait()
    session(state, "ended-dead", "ended")
    leases.acquire(state, "ended-dead", dead)
    for p in (state.lease("ended-dead"), state.session_lock("ended-dead")):
        age(p)

    assert collect(state)["sessions_removed"] == []  # no --older-than: sessions stay
    dry = collect(state, older_than="1d", dry_run=True)
    assert sorted(dry["sessions_removed"]) == ["ended-dead", "ended-old", "recovered-old"]
    assert os.path.exists(state.session_record("ended-old"))
    rep = collect(state, older_than="1d")
    assert sorted(rep["sessions_removed"]) == sorted(dry["sessions_removed"])
    left = sorted(os.listdir(state.sessions))
    gone = ("ended-old.", "recovered-old.", "ended-dead.")
    # the session lock is removed too (held, so a waiter locks the path afresh); only
    # the session's other locks stay, as empty files
    assert not any(n.startswith(gone) and not n.endswith(".lock") for n in left)
    for sid in gone:
        assert sid + "lock" not in left
    for sid in ("ended-new", "active-old", "ended-live"):
        assert os.path.exists(state.session_record(sid))


def test_bad_arguments(tmp_path: Path) -> None:
    state, _store = new_state(tmp_path)
    with pytest.raises(InvalidInputError):
        collect(state, older_than="yesterday")
    with pytest.raises(InvalidInputError):
        collect(state, keep=-1)
    with pytest.raises(InvalidInputError):
        collect(state, older_than=-5.0)


def test_an_event_journaled_while_gc_decides_is_not_deleted(tmp_path: Path) -> None:
    """gc re-checks an old session under its lock: a hook that appends an event between
    gc's first look and the delete keeps the session (and the event) alive."""
    import threading

    state, _store = new_state(tmp_path)
    session(state, "s1", "ended")
    journal.append(state, "s1", [journal.wrap(b'{"hook_event_name":"Stop"}')])
    for p in (state.session_wal("s1"), state.session_lock("s1")):
        age(p)
    result: dict[str, object] = {}
    with FileLock(state.session_lock("s1")):  # a hook process is mid-append
        worker = threading.Thread(target=lambda: result.update(collect(state, older_than="1d")))
        worker.start()
        time.sleep(0.3)  # gc has looked, found the session old, and waits for the lock
        assert worker.is_alive()
        with open(state.session_wal("s1"), "ab"):
            pass
        os.utime(state.session_wal("s1"))  # the hook's append: the session is active again
    worker.join(30)
    assert result["sessions_removed"] == []
    assert os.path.exists(state.session_wal("s1"))
