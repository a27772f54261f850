"""Write-ahead log: round trips, group commit, torn tails, damage, old generations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from claude_state.errors import WALError
from claude_state.storage import wal


def new_wal(tmp: Path, name: str = "w.wal", base_seq: int = 1, generation: int = 1) -> str:
    (tmp / "temp").mkdir(exist_ok=True)
    path = str(tmp / name)
    wal.create(
        path, str(tmp / "temp"), kind=wal.KIND_WORKFLOW, generation=generation, base_seq=base_seq
    )
    return path


def payloads(n: int) -> list[bytes]:
    return [b'{"i": %d, "pad": "%s"}' % (i, b"x" * (i % 13)) for i in range(n)]


def test_round_trip_and_group_commit(tmp_path: Path) -> None:
    path = new_wal(tmp_path, base_seq=5)
    assert wal.append(path, [b"a"]) == [5]
    assert wal.append(path, [b"b", b"c", b"d"]) == [6, 7, 8]
    r = wal.read(path)
    assert r.records == [(5, b"a"), (6, b"b"), (7, b"c"), (8, b"d")]
    assert r.next_seq == 9 and not r.torn
    assert wal.read(path, after_seq=6).records == [(7, b"c"), (8, b"d")]
    assert wal.read(path).header.base_seq == 5


def test_empty_payload_and_large_payload(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    big = os.urandom(300_000)
    wal.append(path, [b"", big])
    assert wal.read(path).records == [(1, b""), (2, big)]


def test_group_commit_uses_one_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_wal(tmp_path)
    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    wal.append(path, payloads(10))
    assert len(calls) == 1


def test_torn_tail_at_every_offset(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    wal.append(path, payloads(3))
    good = Path(path).read_bytes()
    wal.append(path, [b'{"last": "record of some length"}'])
    full = Path(path).read_bytes()
    assert len(full) > len(good)
    for cut in range(len(good), len(full)):
        Path(path).write_bytes(full[:cut])
        r = wal.read(path)
        assert [s for s, _ in r.records] == [1, 2, 3]  # readers ignore the torn tail
        assert r.torn == (cut > len(good))
        # The next append cuts the tail and continues the sequence: at 4 after a clean
        # end; after torn bytes, above any number they could have held (a reader may
        # have applied record 4 before it was damaged), behind a jump record.
        could_hold = len(full[len(good) : cut].rstrip(b"\0")) // wal.REC_OVERHEAD
        want = 4 + could_hold
        assert wal.append(path, [b"next"]) == [want]
        r2 = wal.read(path)
        assert [s for s, _ in r2.records] == [1, 2, 3, want] and not r2.torn
        assert r2.records[-1] == (want, b"next")
        assert r2.jumps == ([(4, want)] if could_hold else [])


def test_torn_tail_of_a_group(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    wal.append(path, [b"one"])
    size = os.path.getsize(path)
    wal.append(path, [b"two", b"three", b"four"])
    full = Path(path).read_bytes()
    rec_two = wal.REC_OVERHEAD + 3
    # cut within the third record of the group: the first two records of it survive
    Path(path).write_bytes(full[: size + rec_two + wal.REC_OVERHEAD + 5 + 3])
    assert [s for s, _ in wal.read(path).records] == [1, 2, 3]


def test_damage_before_the_tail_is_an_error(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    wal.append(path, payloads(5))
    full = Path(path).read_bytes()
    first_payload = wal.FILE_HEAD_SIZE + wal.REC_HEAD.size
    for off in (wal.FILE_HEAD_SIZE, first_payload + 2, first_payload + 10):
        damaged = bytearray(full)
        damaged[off] ^= 0x10
        Path(path).write_bytes(bytes(damaged))
        with pytest.raises(WALError, match="later records are intact"):
            wal.read(path)
        # a writer checks only the last record (O(1) append), but it never cuts the
        # good records after the damage, and readers keep reporting it
        wal.append(path, [b"x"])
        assert Path(path).read_bytes().startswith(bytes(damaged))
        with pytest.raises(WALError):
            wal.read(path)


def test_damage_check_is_not_vacuous(tmp_path: Path) -> None:
    """The same flip in the *last* record is a torn tail (ignored), proving the check
    distinguishes position: it is not simply rejecting every flip."""
    path = new_wal(tmp_path)
    wal.append(path, payloads(5))
    full = bytearray(Path(path).read_bytes())
    full[-20] ^= 0x10
    Path(path).write_bytes(bytes(full))
    assert [s for s, _ in wal.read(path).records] == [1, 2, 3, 4]


def test_header_damage(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    wal.append(path, [b"a"])
    full = Path(path).read_bytes()
    for bit in range(wal.FILE_HEAD_SIZE * 8):
        damaged = bytearray(full)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(WALError):
            wal.parse(bytes(damaged))
    for cut in range(wal.FILE_HEAD_SIZE):
        with pytest.raises(WALError):
            wal.parse(full[:cut])


def test_records_of_another_generation_are_rejected(tmp_path: Path) -> None:
    a = new_wal(tmp_path, "a.wal")
    b = new_wal(tmp_path, "b.wal", generation=2)
    wal.append(a, [b"from-a-1", b"from-a-2"])
    wal.append(b, [b"from-b-1"])
    head_b = Path(b).read_bytes()[: wal.FILE_HEAD_SIZE]
    body_a = Path(a).read_bytes()[wal.FILE_HEAD_SIZE :]
    # A's records (same seqs) behind B's header: the salt differs, nothing verifies
    Path(b).write_bytes(head_b + body_a)
    r = wal.read(b)
    assert r.records == [] and r.torn
    # B's real record followed by A's record #2: the foreign record is not accepted
    wal.create(b, str(tmp_path / "temp"), kind=wal.KIND_WORKFLOW, generation=2, base_seq=1)
    wal.append(b, [b"from-b-1"])
    rec_a2 = body_a[wal.REC_OVERHEAD + len(b"from-a-1") :]
    with open(b, "ab") as f:
        f.write(rec_a2)
    assert wal.read(b).records == [(1, b"from-b-1")]
    # the control: with the salt of A, the copied bytes do verify
    assert wal.parse(Path(a).read_bytes()).records[1] == (2, b"from-a-2")


def test_sequence_gap_is_rejected(tmp_path: Path) -> None:
    path = new_wal(tmp_path)
    wal.append(path, [b"a"])
    salt = wal.read(path).header.salt
    with open(path, "ab") as f:
        f.write(wal.encode_record(salt, 3, b"gap"))  # 2 is missing
    with pytest.raises(WALError, match="gap"):
        wal.read(path)
    with open(path, "rb") as f:
        buf = f.read()
    with pytest.raises(WALError):
        wal.parse(buf)
    # control: the right seq is accepted
    path2 = new_wal(tmp_path, "ok.wal")
    wal.append(path2, [b"a"])
    with open(path2, "ab") as f:
        f.write(wal.encode_record(wal.read(path2).header.salt, 2, b"fine"))
    assert wal.read(path2).records[-1] == (2, b"fine")


def test_append_to_missing_wal(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        wal.append(str(tmp_path / "none.wal"), [b"x"])


class WALMachine(RuleBasedStateMachine):
    """The WAL against a plain list, with torn writes, tail garbage and reopen."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)
        self.model: list[bytes] = []
        self.seqs: list[int] = []
        self.path = ""
        #: the bytes that would complete the last torn record, and its payload: tail
        #: garbage that happens to be exactly those bytes makes it a whole, valid record
        self.torn_rest: tuple[bytes, bytes] | None = None

    @initialize(base=st.integers(1, 1000))
    def setup(self, base: int) -> None:
        self.base = base
        self.path = new_wal(self.dir, base_seq=base)

    @rule(batch=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
    def append(self, batch: list[bytes]) -> None:
        seqs = wal.append(self.path, batch)
        self.torn_rest = None  # the writer cut the torn tail before appending
        # Consecutive from the end, or above it after a cut torn tail (a jump record):
        # never a number used before.
        least = self.seqs[-1] + 1 if self.seqs else self.base
        assert seqs == list(range(seqs[0], seqs[0] + len(batch))) and seqs[0] >= least
        torn = wal.read(self.path).jumps
        assert seqs[0] == least or (torn and torn[-1][1] == seqs[0])
        self.model.extend(batch)
        self.seqs.extend(seqs)

    @rule(batch=st.lists(st.binary(max_size=64), min_size=1, max_size=4), frac=st.floats(0, 1))
    def torn_append(self, batch: list[bytes], frac: float) -> None:
        """A writer killed mid-append: only a prefix of its bytes reached the file."""
        r = wal.read(self.path)
        salt = r.header.salt
        seq = r.next_seq
        # the writer cuts an earlier torn tail before it appends (wal._tail_state)
        os.truncate(self.path, r.valid_end)
        data = b"".join(wal.encode_record(salt, seq + i, p) for i, p in enumerate(batch))
        cut = int(len(data) * frac)
        # whole records that made it are durable on disk even though unacknowledged
        done, off = 0, 0
        for i, p in enumerate(batch):
            n = wal.REC_OVERHEAD + len(p)
            if off + n > cut:
                break
            done, off = i + 1, off + n
        with open(self.path, "ab") as f:
            f.write(data[:cut])
        self.model.extend(batch[:done])
        self.torn_rest = None
        if done < len(batch) and cut > off:
            rec = wal.encode_record(salt, seq + done, batch[done])
            self.torn_rest = (rec[cut - off :], batch[done])
        self.seqs.extend(range(seq, seq + done))

    @rule(garbage=st.binary(min_size=1, max_size=40))
    def garbage_tail(self, garbage: bytes) -> None:
        if garbage.endswith(wal.END):
            garbage += b"\0"
        with open(self.path, "ab") as f:
            f.write(garbage)
        if self.torn_rest is not None and garbage.startswith(self.torn_rest[0]):
            # e.g. a record torn just before its END marker, then garbage "CSWE": the
            # record is whole and checksummed, so it is read; it was never acknowledged
            self.model.append(self.torn_rest[1])
        self.torn_rest = None  # anything appended now stands between the torn bytes

    @rule()
    def reopen(self) -> None:
        r = wal.read(self.path)
        assert [p for _, p in r.records] == self.model

    @invariant()
    def matches_model(self) -> None:
        if not self.path:
            return
        r = wal.read(self.path)
        assert [p for _, p in r.records] == self.model
        assert [s for s, _ in r.records] == self.seqs

    def teardown(self) -> None:
        self._tmp.cleanup()


WALMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestWALMachine = WALMachine.TestCase


# -- preallocated room (workflow WALs) ----------------------------------------------------


def new_prealloc(tmp: Path, name: str = "p.wal", base_seq: int = 1) -> str:
    (tmp / "temp").mkdir(exist_ok=True)
    path = str(tmp / name)
    wal.create(
        path,
        str(tmp / "temp"),
        kind=wal.KIND_WORKFLOW,
        generation=1,
        base_seq=base_seq,
        flags=wal.FLAG_PREALLOC,
    )
    return path


def test_zero_room_is_not_a_torn_tail(tmp_path: Path) -> None:
    path = new_prealloc(tmp_path)
    _seqs, end = wal.append_tracked(path, payloads(3))
    assert os.path.getsize(path) > end  # room follows the records
    r = wal.read(path)
    assert [s for s, _ in r.records] == [1, 2, 3] and not r.torn and r.valid_end == end
    assert wal.tail(path) == (1, 3)  # the O(1) tail strips the room first
    assert wal.append(path, [b"four"]) == [4]  # and an append without a cache finds the end
    assert [s for s, _ in wal.read(path).records] == [1, 2, 3, 4]


def test_appends_inside_the_room_do_not_grow_the_file(tmp_path: Path) -> None:
    path = new_prealloc(tmp_path)
    _s, end = wal.append_tracked(path, [b"a"])
    size = os.path.getsize(path)
    header = wal.read(path).header
    for i in range(20):
        held = (header.salt, end, 2 + i, header.flags)
        fd = os.open(path, os.O_RDWR)
        try:
            _s, end = wal.append_fd(fd, path, [b"x" * 100], held)
        finally:
            os.close(fd)
    assert os.path.getsize(path) == size and end < size
    assert len(wal.read(path).records) == 21


def test_torn_tail_in_the_room_at_every_offset(tmp_path: Path) -> None:
    """A writer killed mid-append leaves a prefix of its record over the zero room."""
    path = new_prealloc(tmp_path)
    _s, end = wal.append_tracked(path, payloads(3))
    base = Path(path).read_bytes()
    record = wal.encode_record(wal.read(path).header.salt, 4, b'{"last": "one of some length"}')
    for cut in range(1, len(record)):
        image = bytearray(base)
        image[end : end + cut] = record[:cut]
        Path(path).write_bytes(bytes(image))
        r = wal.read(path)
        assert [s for s, _ in r.records] == [1, 2, 3] and r.torn
        # The tail is cut and the sequence goes on above anything it could have held.
        want = 4 + cut // wal.REC_OVERHEAD  # as many records as the torn bytes could hold
        assert wal.append(path, [b"next"]) == [want]
        r2 = wal.read(path)
        assert r2.records[-1] == (want, b"next") and not r2.torn
        assert r2.jumps == ([(4, want)] if want > 4 else [])


def test_damage_before_a_later_record_in_the_room_is_an_error(tmp_path: Path) -> None:
    path = new_prealloc(tmp_path)
    wal.append_tracked(path, payloads(5))
    damaged = bytearray(Path(path).read_bytes())
    damaged[wal.FILE_HEAD_SIZE + wal.REC_HEAD.size + 2] ^= 0x10  # first record's payload
    Path(path).write_bytes(bytes(damaged))
    with pytest.raises(WALError, match="later records are intact"):
        wal.read(path)


def test_zeros_after_the_data_of_a_journal_are_still_a_torn_tail(tmp_path: Path) -> None:
    """Without the flag, the data ends at the end of the file, as it always did."""
    path = new_wal(tmp_path)
    wal.append(path, payloads(2))
    with open(path, "ab") as f:
        f.write(bytes(100))
    assert wal.read(path).torn
    assert wal.append(path, [b"c"]) == [3]  # zeros cannot hold a record: no jump
    assert not wal.read(path).torn


def _stale_writer_appends(path: str) -> list[bytes]:
    """Writer A caches its end, writer B appends, then A appends with its stale cache."""
    _s, end = wal.append_tracked(path, [b"a"])
    header = wal.read(path).header
    wal.append(path, [b"b"])  # another writer (no cache): finds the end by itself
    fd = os.open(path, os.O_RDWR)
    try:
        wal.append_fd(fd, path, [b"c"], (header.salt, end, 2, header.flags))
    finally:
        os.close(fd)
    return [p for _, p in wal.read(path).records]


def test_a_stale_cached_end_never_overwrites_another_writers_record(tmp_path: Path) -> None:
    assert _stale_writer_appends(new_prealloc(tmp_path)) == [b"a", b"b", b"c"]


def test_control_without_the_zero_check_the_stale_writer_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is what protects B's record: pretend the bytes at the cached end
    are always zero and A writes over it (the harness sees the loss)."""
    real = os.pread
    monkeypatch.setattr(
        wal.os,
        "pread",
        lambda fd, n, off: wal._ZERO_HEAD if n == wal.REC_HEAD.size else real(fd, n, off),
    )
    got = _stale_writer_appends(new_prealloc(tmp_path))
    monkeypatch.undo()
    assert got != [b"a", b"b", b"c"] and b"b" not in got


class PreallocWALMachine(WALMachine):
    """The same model on a preallocated WAL: torn writes land in the zero room."""

    @initialize(base=st.integers(1, 1000))
    def setup(self, base: int) -> None:
        self.base = base
        self.path = new_prealloc(self.dir, base_seq=base)

    @rule(batch=st.lists(st.binary(max_size=64), min_size=1, max_size=4), frac=st.floats(0, 1))
    def torn_append(self, batch: list[bytes], frac: float) -> None:
        r = wal.read(self.path)
        if r.torn:  # the writer cuts an earlier torn tail first (wal._tail_state)
            os.truncate(self.path, r.valid_end)
        seq = r.next_seq
        data = b"".join(wal.encode_record(r.header.salt, seq + i, p) for i, p in enumerate(batch))
        cut = int(len(data) * frac)
        done, off = 0, 0
        for i, p in enumerate(batch):
            n = wal.REC_OVERHEAD + len(p)
            if off + n > cut:
                break
            done, off = i + 1, off + n
        with open(self.path, "r+b") as f:
            f.seek(r.valid_end)
            f.write(data[:cut])
        self.model.extend(batch[:done])
        self.seqs.extend(range(seq, seq + done))

    @rule(garbage=st.binary(min_size=1, max_size=40), at_data_end=st.booleans())
    def garbage_in_room(self, garbage: bytes, at_data_end: bool) -> None:
        if garbage.endswith(wal.END):
            garbage += b"\1"
        with open(self.path, "r+b") as f:
            f.seek(wal.read(self.path).valid_end if at_data_end else 0, os.SEEK_SET)
            if not at_data_end:
                f.seek(0, os.SEEK_END)
            f.write(garbage)


PreallocWALMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestPreallocWALMachine = PreallocWALMachine.TestCase


def test_cut_torn_tail_keeps_the_room_of_a_clean_wal(tmp_path: Path) -> None:
    path = new_prealloc(tmp_path)
    wal.append_tracked(path, payloads(3))
    size = os.path.getsize(path)
    assert wal.cut_torn_tail(path) is False and os.path.getsize(path) == size
    end = wal.read(path).valid_end
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(b"\x07torn")
    assert wal.cut_torn_tail(path) is True and os.path.getsize(path) == end
    assert [s for s, _ in wal.read(path).records] == [1, 2, 3]


def test_a_read_racing_a_writer_is_retried_before_damage_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock-free read can copy a page before an overwrite and a later one after it;
    one such read must not be reported as corruption. Persistent damage still is (see
    test_damage_before_a_later_record_in_the_room_is_an_error)."""
    path = new_prealloc(tmp_path)
    wal.append_tracked(path, payloads(3))
    real, calls = wal.parse, []

    def racy(buf: bytes, p: str | None = None, after_seq: int = -1) -> wal.WALRead:
        calls.append(1)
        if len(calls) == 1:
            raise WALError("record at offset 40 is damaged but later records are intact", p)
        return real(buf, p, after_seq)

    monkeypatch.setattr(wal, "parse", racy)
    assert [s for s, _ in wal.read(path).records] == [1, 2, 3]
    assert len(calls) == 2
