"""WorkflowStore: CRUD, fencing, compaction, the .prev fallback, stale generations."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers.storeutil import T0, make_workflow, new_store

from claude_state.domain.ops import op_owner, op_set_data, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.errors import (
    ConflictError,
    FrameError,
    IntegrityError,
    NotFoundError,
    StaleEpochError,
)
from claude_state.storage import frame, wal
from claude_state.storage.layout import StateDir


def flip(path: str, offset: int) -> None:
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 0x01
    Path(path).write_bytes(bytes(data))


def test_create_load_apply_list_delete(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    wf = make_workflow("wf1")
    store.create(wf)
    assert store.exists("wf1") and store.ids() == ["wf1"]
    assert store.load("wf1").to_dict() == make_workflow("wf1").to_dict()
    out = store.apply("wf1", op_step("s0", "running", at=T0))
    assert out.step("s0").status == "running"
    store.apply_many(
        "wf1", [op_step("s0", "completed", output="ok", at=T0), op_set_data("k", [1, 2], T0)]
    )
    fresh = WorkflowStore(state).load("wf1")
    assert fresh.step("s0").status == "completed" and fresh.data == {"k": [1, 2]}
    assert fresh.to_dict() == store.load("wf1").to_dict()
    store.create(make_workflow("wf2"))
    assert [w.id for w in store.list()] == ["wf1", "wf2"]
    assert store.delete("wf1") is True
    assert store.delete("wf1") is False
    assert store.ids() == ["wf2"]
    assert not any(n.startswith("wf1") for n in os.listdir(state.workflows))
    with pytest.raises(NotFoundError):
        store.load("wf1")


def test_not_found_and_conflict(tmp_path: Path) -> None:
    _, store = new_store(tmp_path)
    with pytest.raises(NotFoundError):
        store.load("nope")
    with pytest.raises(NotFoundError):
        store.apply("nope", op_set_data("k", 1, T0))
    store.create(make_workflow("wf1"))
    store.apply("wf1", op_set_data("k", 1, T0))
    with pytest.raises(ConflictError):
        store.create(make_workflow("wf1"))
    assert store.load("wf1").data == {"k": 1}  # the refused create changed nothing


def test_refused_op_writes_nothing(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    before = Path(state.workflow_wal("wf1")).read_bytes()
    with pytest.raises(ConflictError):
        store.apply("wf1", op_step("s1", "running", at=T0))  # deps not done
    assert Path(state.workflow_wal("wf1")).read_bytes() == before
    assert store.load("wf1").step("s1").status == "pending"


def fail_mutation_after_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, unstage: bool
) -> tuple[WorkflowStore, WorkflowStore]:
    """A step op whose mutation (run after its record is written, before the flush)
    fails: the op must not be acknowledged, so its record must not stay."""
    from claude_state.domain import ops as ops_mod

    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    store.apply("wf1", op_set_data("k", 1, T0))
    if not unstage:
        monkeypatch.setattr(wal, "unstage_fd", lambda fd, end: None)

    def broken_log(wf: object, entry: object) -> None:
        raise RuntimeError("a bug in the mutation")

    monkeypatch.setattr(ops_mod, "_log", broken_log)
    with pytest.raises(RuntimeError):
        store.apply("wf1", op_step("s0", "running", at=T0))
    monkeypatch.undo()
    return store, WorkflowStore(state)


def test_a_failed_mutation_leaves_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, fresh = fail_mutation_after_the_write(tmp_path, monkeypatch, unstage=True)
    assert fresh.load("wf1").step("s0").status == "pending"
    assert fresh.load("wf1").data == {"k": 1}
    # the writer's half-changed cache was dropped: its next op starts from the files
    wf = store.apply("wf1", op_set_data("k", 2, T0))
    assert wf.step("s0").status == "pending"
    assert fresh.load("wf1").to_dict() == wf.to_dict()


def test_control_a_record_left_behind_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: without taking the staged record back, the failed op becomes visible."""
    _store, fresh = fail_mutation_after_the_write(tmp_path, monkeypatch, unstage=False)
    assert fresh.load("wf1").step("s0").status == "running"


def lose_the_first_sector_of_the_last_append(path: str, end_before: int) -> None:
    """A power loss that persisted an append's later sectors but not its first one:
    the first 512 bytes it wrote read back as the zero room they overwrote."""
    data = bytearray(Path(path).read_bytes())
    data[end_before : end_before + 512] = bytes(512)
    Path(path).write_bytes(bytes(data))


def tear_a_group(tmp_path: Path, *, one_record: bool) -> tuple[StateDir, str]:
    """After one op, a group of three (the first one long) is written by one append,
    and a power loss keeps all of it but its first sector. ``one_record``: through
    apply_many (one record), else as separate records of one WAL append."""
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    store.apply("wf1", op_set_data("k", 0, T0))
    path = state.workflow_wal("wf1")
    end_before = wal.read(path).valid_end
    ops = [op_set_data("pad", "x" * 600, T0)] + [op_set_data("k", i, T0) for i in (1, 2)]
    if one_record:
        store.apply_many("wf1", ops)
        assert wal.read(path).next_seq == wal.read(path).header.base_seq + 2
    else:
        store.close()
        wal.append(path, [frame.dumps(op) for op in ops])
    lose_the_first_sector_of_the_last_append(path, end_before)
    return state, path


def test_a_group_torn_by_power_loss_is_cut_as_a_whole(tmp_path: Path) -> None:
    """apply_many writes its ops as one record, so a group torn by a power loss is a
    torn tail (cut, the state before the group), never a valid record after a torn one
    (which a reader must report as damage)."""
    state, path = tear_a_group(tmp_path, one_record=True)
    assert wal.read(path).torn
    fresh = WorkflowStore(state)
    assert fresh.load("wf1").data == {"k": 0}
    assert fresh.verify("wf1") == []
    fresh.apply("wf1", op_set_data("k", 9, T0))  # the next writer cuts the tail
    assert WorkflowStore(state).load("wf1").data == {"k": 9}


def test_control_a_group_of_records_torn_the_same_way_reads_as_damage(tmp_path: Path) -> None:
    """Control: the same ops as separate records of one write, torn the same way, leave
    a valid record after a torn one: damage."""
    from claude_state.errors import WALError

    _state, path = tear_a_group(tmp_path, one_record=False)
    with pytest.raises(WALError):
        wal.read(path)


def saves_behind_a_cached_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, hold: bool
) -> dict[str, object]:
    """Writer A caches the workflow; another store saves it until a new snapshot gets
    the cached one's inode number (ext4 reuses a freed inode at once), with the same
    size (a same-length value) and mtime (a coarse file-system clock: one tick). A then
    applies an op. :returns: the data a fresh reader sees."""
    monkeypatch.setattr(frame, "COMPRESS_THRESHOLD", 1 << 30)  # sizes exact, uncompressed
    state, a = new_store(tmp_path)
    a.create(make_workflow("wf1"))
    for _ in range(10):  # to generation 11: two digits from here to 99, sizes equal
        wf = a.load("wf1")
        wf.data["k"] = 1
        a.save(wf)
    with a._mutex, a._kept_lock("wf1"):
        entry = a._fresh("wf1")  # cached, as after any apply, with an empty WAL
    if not hold:  # the control: the cached snapshot not held open
        os.close(entry.snap_fd)
        entry.snap_fd = -1
    ino, mtime_ns, size = entry.snap_key
    snap = state.workflow_state("wf1")
    b = WorkflowStore(state)
    for i in range(80):
        wf = b.load("wf1")
        wf.data["k"] = 2 + i % 2
        b.save(wf)
        if os.stat(snap).st_ino == ino:
            break
    st = os.stat(snap)
    os.utime(snap, ns=(st.st_atime_ns, mtime_ns))
    assert st.st_size == size
    assert (not hold) == (st.st_ino == ino)
    a.apply("wf1", op_set_data("after", 1, T0))
    return dict(WorkflowStore(state).load("wf1").data)


def test_a_cached_snapshot_is_held_so_its_inode_tells_a_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = saves_behind_a_cached_writer(tmp_path, monkeypatch, hold=True)
    assert data["after"] == 1 and data["k"] in (2, 3)  # B's save, then A's op


def test_control_without_holding_it_a_replaced_snapshot_goes_unnoticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: with the inode free to be reused, A's freshness key still matches, A
    appends to the WAL of an older generation, and its acknowledged op is lost."""
    data = saves_behind_a_cached_writer(tmp_path, monkeypatch, hold=False)
    assert "after" not in data


def test_epoch_fencing(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    store.apply("wf1", op_owner("sess-a", 3, T0))
    store.apply("wf1", op_set_data("k", 1, T0), epoch=3)
    with pytest.raises(StaleEpochError) as info:
        store.apply("wf1", op_set_data("k", 2, T0), epoch=2)
    assert info.value.presented == 2 and info.value.current == 3
    # a second process with its own store is fenced just the same
    with pytest.raises(StaleEpochError):
        WorkflowStore(state).apply("wf1", op_set_data("k", 2, T0), epoch=1)
    assert store.load("wf1").data == {"k": 1}
    store.apply("wf1", op_owner("sess-b", 4, T0))
    with pytest.raises(StaleEpochError):
        store.apply("wf1", op_set_data("k", 3, T0), epoch=3)


def test_compaction_correctness(tmp_path: Path) -> None:
    state, store = new_store(tmp_path, compact_bytes=2000)
    store.create(make_workflow("wf1"))
    expect: dict[str, int] = {}
    gens = set()
    for i in range(300):
        key = f"k{i % 17}"
        expect[key] = i
        store.apply("wf1", op_set_data(key, i, T0))
        gens.add(frame.decode_header(Path(state.workflow_state("wf1")).read_bytes()).generation)
    assert len(gens) > 10  # compaction really happened, many times
    fresh = WorkflowStore(state).load("wf1")
    assert fresh.data == expect
    assert fresh.to_dict() == store.load("wf1").to_dict()
    assert fresh.revision == 300
    # The records stay under the threshold; the file also holds zero-filled room.
    assert wal.read(state.workflow_wal("wf1")).valid_end <= 2000 + 200
    assert os.path.getsize(state.workflow_wal("wf1")) <= wal.PREALLOC_MIN + 2 * 4096 + 2200
    assert store.verify("wf1") == []


def test_cache_sees_other_writers(tmp_path: Path) -> None:
    state, a = new_store(tmp_path, compact_bytes=1500)
    b = WorkflowStore(state, compact_bytes=1500)
    a.create(make_workflow("wf1"))
    for i in range(100):
        (a if i % 3 else b).apply("wf1", op_set_data(f"k{i}", i, T0))
    want = {f"k{i}": i for i in range(100)}
    assert a.load("wf1").data == want and b.load("wf1").data == want
    assert WorkflowStore(state).load("wf1").revision == 100


def _damaged_snapshot_setup(tmp_path: Path) -> tuple[WorkflowStore, str, dict[str, object]]:
    state, store = new_store(tmp_path, compact_bytes=1000)
    store.create(make_workflow("wf1"))
    for i in range(60):  # several compactions, then a few ops in the live WAL
        store.apply("wf1", op_set_data(f"k{i % 5}", i, T0))
    want = store.load("wf1").to_dict()
    return store, state.workflow_state("wf1"), want


@pytest.mark.parametrize("offset", [0, 20, 47, 60, -1])
def test_prev_fallback_gives_identical_state(tmp_path: Path, offset: int) -> None:
    store, snap, want = _damaged_snapshot_setup(tmp_path)
    flip(snap, offset)
    fresh = WorkflowStore(store.state)
    assert fresh.load("wf1").to_dict() == want
    # verify names the damaged file; load with fallback off refuses
    problems = fresh.verify("wf1")
    assert problems and problems[0]["path"] == snap
    with pytest.raises(FrameError):
        fresh.load("wf1", fallback=False)
    # writes continue on top of the fallback, and repair rewrites the snapshot
    fresh.apply("wf1", op_set_data("after", 1, T0))
    assert fresh.repair("wf1")
    assert fresh.verify("wf1") == []
    assert WorkflowStore(store.state).load("wf1").data == {**want["data"], "after": 1}  # type: ignore[dict-item]


def test_no_fallback_means_a_clean_error(tmp_path: Path) -> None:
    store, snap, _ = _damaged_snapshot_setup(tmp_path)
    os.unlink(snap + ".prev")
    flip(snap, 60)
    with pytest.raises(IntegrityError):
        WorkflowStore(store.state).load("wf1")
    assert store.list() == []


@pytest.mark.parametrize("offset", [20, 60], ids=["header", "payload"])
@pytest.mark.parametrize("apply_after", [True, False], ids=["then-apply", "save-only"])
def test_prev_fallback_never_undoes_a_save(tmp_path: Path, offset: int, apply_after: bool) -> None:
    """A whole-document save is not prev + WAL: falling back to .prev would silently
    return the state from *before* the save. It must be an error instead. "save-only"
    leaves the previous (derived) WAL in place, the case the generation check and the
    removal of .prev by save() exist for; "header" damage hides the generation."""
    store, snap, _ = _damaged_snapshot_setup(tmp_path)
    wf = store.load("wf1")
    wf.data = {"restored": True}
    store.save(wf)
    if apply_after:
        store.apply("wf1", op_set_data("x", 1, T0))
    want = store.load("wf1").to_dict()
    assert want["data"] == ({"restored": True, "x": 1} if apply_after else {"restored": True})
    flip(snap, offset)
    fresh = WorkflowStore(store.state)
    try:
        got = fresh.load("wf1").to_dict()
    except IntegrityError:
        return
    assert got == want


def test_old_snapshot_put_back(tmp_path: Path) -> None:
    state, store = new_store(tmp_path, compact_bytes=1000)
    store.create(make_workflow("wf1"))
    snap = state.workflow_state("wf1")
    old = Path(snap).read_bytes()
    for i in range(60):
        store.apply("wf1", op_set_data("k", i, T0))
    assert Path(snap).read_bytes() != old
    shutil.copyfile(snap, snap + ".keep")
    Path(snap).write_bytes(old)
    fresh = WorkflowStore(state)
    with pytest.raises(IntegrityError) as info:
        fresh.load("wf1", fallback=False)
    assert info.value.kind == "stale_generation"
    problems = fresh.verify("wf1")
    assert problems and problems[0]["kind"] == "stale_generation"
    # control: the right snapshot loads
    shutil.copyfile(snap + ".keep", snap)
    assert WorkflowStore(state).load("wf1").data == {"k": 59}


def test_damaged_wal_is_reported(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    for i in range(5):
        store.apply("wf1", op_set_data("k", i, T0))
    flip(state.workflow_wal("wf1"), 60)
    problems = WorkflowStore(state).verify("wf1")
    assert problems and problems[0]["path"] == state.workflow_wal("wf1")
    with pytest.raises(IntegrityError):
        WorkflowStore(state).load("wf1")


def test_verify_missing(tmp_path: Path) -> None:
    _, store = new_store(tmp_path)
    assert store.verify("ghost")[0]["kind"] == "missing"


def test_large_values_go_to_blobs(tmp_path: Path) -> None:
    state, store = new_store(tmp_path, blob_threshold=1000)
    store.create(make_workflow("wf1"))
    big = "line of log output\n" * 500
    store.apply("wf1", op_step("s0", "completed", output=big, at=T0))
    snapless = store.load("wf1").step("s0").output
    assert isinstance(snapless, dict) and "$blob" in snapless
    assert store.output("wf1", "s0") == big
    assert wal.read(state.workflow_wal("wf1")).valid_end < 1000


class _NoMutex:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _two_threads(tmp_path: Path, unguarded: bool) -> list[str]:
    """Two threads on one store whose cache holds one workflow: each call evicts the
    other thread's entry and closes its WAL fd. Returns what went wrong."""
    import threading

    state, store = new_store(tmp_path)
    if unguarded:
        store._mutex = _NoMutex()  # type: ignore[assignment]
    for wid in ("wa", "wb"):
        store.create(make_workflow(wid))
    errors: list[BaseException] = []

    def work(wid: str) -> None:
        try:
            for i in range(60):
                store.apply(wid, op_set_data(f"k{i}", i, T0))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in ("wa", "wb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    wrong = [repr(e) for e in errors]
    fresh = WorkflowStore(state)
    for wid in ("wa", "wb"):
        if fresh.verify(wid) or fresh.load(wid).data != {f"k{i}": i for i in range(60)}:
            wrong.append(f"{wid}: lost or damaged")
    return wrong


def test_threads_sharing_a_store_never_write_through_a_recycled_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import claude_state.domain.store as store_mod

    monkeypatch.setattr(store_mod, "CACHE_SIZE", 1)
    for n in range(3):
        assert _two_threads(tmp_path / str(n), unguarded=False) == []


def test_control_without_the_mutex_threads_break_each_others_fds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness above catches the bug it guards against (closed or recycled fds)."""
    import claude_state.domain.store as store_mod

    monkeypatch.setattr(store_mod, "CACHE_SIZE", 1)
    assert any(_two_threads(tmp_path / str(n), unguarded=True) for n in range(10))
