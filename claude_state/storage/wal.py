"""Write-ahead log: append-only, checksummed, salted records with a cuttable torn tail.

File layout (little-endian; full spec in ``docs/format.md``)::

    header (40 bytes): magic b"CSWL", version u16, kind u8, flags u8, salt u64,
                       generation u64, base_seq u64, header_sum u64 (xxh3_64 of 0..31)
    record:            length u32, seq u64, payload[length],
                       checksum u64, length u32, end magic b"CSWE"

``checksum`` is xxh3_64 of ``length|seq|payload`` seeded with the file's salt, so a
record copied from another WAL generation never verifies. The trailing length lets a
writer find and verify the *last* record in O(1) from the end of its data.

A WAL created with :data:`FLAG_PREALLOC` (workflow WALs) keeps zero-filled room after
its last record, written ahead in chunks: an append then overwrites blocks the file
already has, so its flush moves no metadata (no file-size change, no journal commit of
the file system), which is what makes a step update cost little more than the device
flush itself. After the last record, zero bytes are room, not a torn tail; any non-zero
byte there is a torn tail (or, if a verifying record follows it, corruption).

Invariants:

* Writers hold the subject's :class:`~claude_state.storage.locks.FileLock`. Before
  appending, a writer verifies the last record; if it does not verify (a writer was
  killed mid-append), the torn tail is cut first. So damage that is *not* at the tail is
  never the result of a crash: a reader that finds a bad record followed by a good last
  record reports corruption (:class:`~claude_state.errors.WALError`) instead of silently
  dropping the good records after it.
* Readers never lock; a record being appended concurrently fails its checksum and is
  treated as not yet written.
* Sequence numbers start at ``base_seq`` and increase by one per record, except at a
  *jump record* (length field :data:`JUMP`, no payload, seq = the next record's
  number), which a writer leaves where it cut a torn tail: numbers never go back and
  are never reused, even when the cut bytes held records a reader had applied.
* An append is durable when :func:`append` returns (fdatasync), and several payloads
  passed together share one flush (group commit). A caller holding the file open may
  split an append in two (:func:`stage_fd`, then :func:`sync_fd` or
  :func:`unstage_fd`) to do work of its own while the device writes; it acknowledges
  only after :func:`sync_fd`.
* A writer's cached end (``known``) is trusted only when the bytes there are still
  zero (or the end of the file): another writer's record at that offset means the
  cache is stale.

Hot path module: stdlib and ``xxhash`` only.
"""

import os
import struct

from claude_state.errors import StorageError, WALError
from claude_state.storage.atomic import atomic_write, flush_fd, fsync_enabled
from claude_state.storage.layout import FILE_MODE
from claude_state.storage.safeio import open_regular

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing-only: keep the hot path's imports minimal
    from collections.abc import Callable

MAGIC = b"CSWL"
END = b"CSWE"
VERSION = 1
FILE_HEAD = struct.Struct("<4sHBBQQQ")  # 32 bytes + u64 checksum
FILE_HEAD_SIZE = FILE_HEAD.size + 8  # 40
REC_HEAD = struct.Struct("<IQ")  # 12
REC_FOOT = struct.Struct("<QI4s")  # 16
REC_OVERHEAD = REC_HEAD.size + REC_FOOT.size  # 28
MAX_RECORD = 256 << 20
#: Length-field flag of a *jump* record (no payload; its seq field is the next sequence
#: number). Written where a torn tail was cut: the cut bytes may have held records that
#: a reader already applied, so numbering resumes above any sequence they could hold.
JUMP = 0x80000000

#: Header flag: this generation's snapshot is exactly the previous generation replayed
#: (a compaction), so ``.prev`` snapshot + ``.prev`` WAL can rebuild it without loss.
FLAG_DERIVED = 0x01
#: Header flag: appends keep zero-filled room after the last record (see the module doc).
FLAG_PREALLOC = 0x02
#: Room is added in chunks that double with the file, from PREALLOC_MIN to PREALLOC_MAX.
PREALLOC_MIN = 64 << 10
PREALLOC_MAX = 1 << 20
_PAGE = 4096
_ZERO_HEAD = bytes(REC_HEAD.size)
_PEEK = 64 << 10  # _data_end reads backwards this much at a time
_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)  # not on macOS

# WAL kinds
KIND_WORKFLOW = 1
KIND_SESSION = 2


_xxh3_64: "Callable[[bytes | memoryview, int], int] | None" = None


def _xxh(data: bytes | memoryview, seed: int = 0) -> int:
    # Bound on first use, then a global: an ``import`` statement run on every record
    # costs ~10 us once other work has evicted the import state from the CPU caches.
    global _xxh3_64
    if _xxh3_64 is None:
        import xxhash

        _xxh3_64 = xxhash.xxh3_64_intdigest
    return _xxh3_64(data, seed)


class WALHeader:
    """A WAL file's header. (A plain slotted class, not a dataclass: ``dataclasses``
    imports ``inspect``, ~10 ms, and this module is on the hook's hot path.)"""

    __slots__ = ("kind", "salt", "generation", "base_seq", "flags")

    def __init__(self, kind: int, salt: int, generation: int, base_seq: int, flags: int = 0):
        self.kind = kind
        self.salt = salt
        self.generation = generation
        self.base_seq = base_seq
        self.flags = flags

    def _key(self) -> tuple[int, int, int, int, int]:
        return (self.kind, self.salt, self.generation, self.base_seq, self.flags)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WALHeader) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"WALHeader(kind={self.kind}, salt={self.salt}, generation={self.generation}, "
            f"base_seq={self.base_seq}, flags={self.flags})"
        )


class WALRead:
    """The result of reading a WAL: verified records and where the valid bytes end."""

    __slots__ = ("header", "records", "valid_end", "size", "next_seq", "torn", "ino", "jumps")

    def __init__(
        self,
        header: "WALHeader",
        records: list[tuple[int, bytes]] | None = None,
        valid_end: int = FILE_HEAD_SIZE,
        size: int = FILE_HEAD_SIZE,
        next_seq: int = 0,
    ) -> None:
        self.header = header
        self.records: list[tuple[int, bytes]] = [] if records is None else records
        self.valid_end = valid_end
        self.size = size
        self.next_seq = next_seq
        #: True when non-zero bytes after the last valid record were ignored (a torn
        #: tail). Zero bytes there are preallocated room.
        self.torn = False
        #: The file's inode number (set by :func:`read`), so a writer caching this
        #: read can tell when the file was replaced.
        self.ino = 0
        #: ``(first skipped, resumed at)`` of each jump record: sequence numbers never
        #: used because a torn tail was cut there.
        self.jumps: list[tuple[int, int]] = []


def encode_header(kind: int, salt: int, generation: int, base_seq: int, flags: int = 0) -> bytes:
    head = FILE_HEAD.pack(MAGIC, VERSION, kind, flags, salt, generation, base_seq)
    return head + struct.pack("<Q", _xxh(head))


def parse_header(data: bytes, path: str | None = None) -> "WALHeader":
    if len(data) < FILE_HEAD_SIZE:
        raise WALError(f"WAL header truncated ({len(data)} bytes)", path)
    head = data[: FILE_HEAD.size]
    (want,) = struct.unpack_from("<Q", data, FILE_HEAD.size)
    if _xxh(head) != want:
        raise WALError("WAL header checksum mismatch", path)
    magic, version, kind, flags, salt, gen, base = FILE_HEAD.unpack(head)
    if magic != MAGIC:
        raise WALError(f"not a claude-state WAL (magic {magic!r})", path)
    if version != VERSION:
        raise WALError(f"unsupported WAL version {version}", path)
    return WALHeader(kind, salt, gen, base, flags)


def encode_record(salt: int, seq: int, payload: bytes) -> bytes:
    n = len(payload)
    if n > MAX_RECORD:
        raise StorageError(f"WAL record of {n} bytes exceeds {MAX_RECORD}")
    head = REC_HEAD.pack(n, seq)
    csum = _xxh(head + payload, salt)
    return b"".join((head, payload, REC_FOOT.pack(csum, n, END)))


def encode_jump(salt: int, next_seq: int) -> bytes:
    """A jump record: the next record's sequence number is *next_seq* (see :data:`JUMP`)."""
    head = REC_HEAD.pack(JUMP, next_seq)
    return head + REC_FOOT.pack(_xxh(head, salt), JUMP, END)


def _record_at(
    buf: bytes | memoryview, off: int, salt: int
) -> tuple[int, bytes | None, int] | None:
    """Decode the record at *off*: (seq, payload, end offset), or None if invalid.

    A jump record's payload is None and its seq is the next record's."""
    size = len(buf)
    if off + REC_OVERHEAD > size:
        return None
    field, seq = REC_HEAD.unpack_from(buf, off)
    n = 0 if field == JUMP else field
    end = off + REC_OVERHEAD + n
    if n > MAX_RECORD or end > size:
        return None
    csum, n2, magic = REC_FOOT.unpack_from(buf, end - REC_FOOT.size)
    if n2 != field or magic != END:
        return None
    body = bytes(buf[off : off + REC_HEAD.size + n])
    if _xxh(body, salt) != csum:
        return None
    if field == JUMP:
        return seq, None, end
    return seq, body[REC_HEAD.size :], end


def _all_zero(buf: bytes, off: int) -> bool:
    """Whether ``buf[off:]`` is all zero bytes (preallocated room). A slice compared to
    a zero buffer is a memcmp: ~0.2 ms a MiB, several times faster than ``count``."""
    return buf[off:] == bytes(len(buf) - off)


def _verified_record_after(buf: bytes, off: int, salt: int) -> int | None:
    """Start of a record that verifies and starts after *off*, or None.

    Found through the end magic and trailing length of each candidate, so it costs a
    ``find`` over the bytes plus one checksum per candidate. Used only once a record at
    *off* failed: a verifying record after it means damage, not a torn tail.
    """
    view = memoryview(buf)
    p = buf.find(END, off)
    while p != -1:
        end = p + len(END)
        field: int = struct.unpack_from("<I", buf, p - 4)[0]
        start = end - REC_OVERHEAD - (0 if field == JUMP else field)
        if start > off:
            rec = _record_at(view, start, salt)
            if rec is not None and rec[2] == end:
                return start
        p = buf.find(END, p + 1)
    return None


def parse(buf: bytes, path: str | None = None, after_seq: int = -1) -> "WALRead":
    """Verify a whole WAL image and return its records with ``seq > after_seq``.

    :raises WALError: bad header, a sequence gap, or damage before the tail.
    """
    header = parse_header(buf, path)
    result = WALRead(header=header, size=len(buf), next_seq=header.base_seq)
    off = FILE_HEAD_SIZE
    expect = header.base_seq
    view = memoryview(buf)
    while off < len(buf):
        rec = _record_at(view, off, header.salt)
        if rec is None:
            if header.flags & FLAG_PREALLOC and _all_zero(buf, off):
                break  # preallocated room after the last record
            if _verified_record_after(buf, off, header.salt) is not None:
                raise WALError(
                    f"record at offset {off} is damaged but later records are intact "
                    "(corruption, not a torn tail)",
                    path,
                )
            result.torn = True  # ignored by readers, cut by the next writer
            break
        seq, payload, end = rec
        if payload is None:  # a jump: numbering resumes at seq
            if seq < expect:
                raise WALError(f"sequence goes back at offset {off}: {seq} < {expect}", path)
            result.jumps.append((expect, seq))
            expect = seq
            off = end
            continue
        if seq != expect:
            raise WALError(f"sequence gap at offset {off}: found {seq}, expected {expect}", path)
        if seq > after_seq:
            result.records.append((seq, payload))
        expect = seq + 1
        off = end
    result.valid_end = off
    result.next_seq = expect
    return result


def read(path: str, after_seq: int = -1) -> "WALRead":
    """Read and verify the WAL at *path* (lock-free). :raises FileNotFoundError:

    A read racing a writer's overwrite of the zero room can copy an early page before
    the write and a later one after it, so a record looks damaged with a good one after
    it. Damage is therefore reported only when a fresh read shows it too.
    """
    for attempt in range(3):
        fd = open_regular(path)  # no symlink, FIFO or device (storage/safeio.py)
        try:
            ino = os.fstat(fd).st_ino
            buf = _read_all(fd)
        finally:
            os.close(fd)
        try:
            result = parse(buf, path, after_seq)
        except WALError:
            if attempt == 2:
                raise
            import time

            time.sleep(0.005 * (attempt + 1))
            continue
        result.ino = ino
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def new_salt() -> int:
    """A fresh random WAL salt (chosen ahead when a snapshot must name its WAL)."""
    return int.from_bytes(os.urandom(8), "little")


def create(
    path: str,
    temp_dir: str,
    *,
    kind: int,
    generation: int,
    base_seq: int,
    flags: int = 0,
    salt: int | None = None,
) -> "WALHeader":
    """Atomically (re)place *path* with an empty WAL of a new generation and salt.

    :param salt: the salt to use (default: a new one); a workflow snapshot records the
        salt of the WAL that follows it, so it is chosen before the snapshot is written.
    """
    if salt is None:
        salt = new_salt()
    atomic_write(path, encode_header(kind, salt, generation, base_seq, flags), temp_dir)
    return WALHeader(kind, salt, generation, base_seq, flags)


def _data_end(fd: int, size: int) -> int:
    """Offset just past the last non-zero byte of a preallocated WAL (>= the header).

    Records end with the non-zero end magic, so in a clean file this is the end of the
    last record. Read backwards a chunk at a time; a chunk is tested against zeros with
    a memcmp and only the one holding data is stripped.
    """
    hi = size
    while hi > FILE_HEAD_SIZE:
        lo = max(FILE_HEAD_SIZE, hi - _PEEK)
        chunk = os.pread(fd, hi - lo, lo)
        if chunk != bytes(len(chunk)):
            return lo + len(chunk.rstrip(b"\0"))
        hi = lo
    return FILE_HEAD_SIZE


def _tail_state(fd: int, path: str) -> "tuple[WALHeader, int, int]":
    """(header, next_seq, valid_end) of an open WAL, cutting a torn tail if present.

    Fast path: verify only the last record (two preads; a preallocated WAL first finds
    where its data ends). Slow path, only after a crash left a torn tail: scan the whole
    file, truncate to the last valid record, flush.
    """
    size = os.fstat(fd).st_size
    head = os.pread(fd, FILE_HEAD_SIZE, 0)
    header = parse_header(head, path)
    data_end = _data_end(fd, size) if header.flags & FLAG_PREALLOC else size
    if data_end == FILE_HEAD_SIZE:
        return header, header.base_seq, FILE_HEAD_SIZE
    if data_end >= FILE_HEAD_SIZE + REC_OVERHEAD:
        foot = os.pread(fd, REC_FOOT.size, data_end - REC_FOOT.size)
        _c, n, magic = REC_FOOT.unpack(foot)
        start = data_end - REC_OVERHEAD - (0 if n == JUMP else n)
        if magic == END and start >= FILE_HEAD_SIZE:
            rec = os.pread(fd, data_end - start, start)
            got = _record_at(rec, 0, header.salt)
            if got is not None and got[2] == len(rec):
                return header, got[0] + (got[1] is not None), data_end
    # Slow path: torn tail (or damage). parse() raises on damage before the tail.
    buf = os.pread(fd, size, 0)
    result = parse(buf, path)
    if not result.torn:
        return header, result.next_seq, result.valid_end
    return _cut(fd, header, result, buf)


def _cut(
    fd: int, header: "WALHeader", result: "WALRead", buf: bytes
) -> "tuple[WALHeader, int, int]":
    """Cut the torn tail found by *result*, leaving a jump record in its place.

    The cut bytes are not always a crash's unacknowledged append: a tail damaged after
    a reader applied it (a session record folds every verified record) held sequence
    numbers that reader has seen. Reusing them would make new records invisible to it,
    so numbering resumes above any sequence the cut bytes could have held (each record
    takes at least :data:`REC_OVERHEAD` bytes and ends with the non-zero end magic, so
    trailing zeros hold none). The jump record is written over the start of the torn
    bytes and flushed *before* the file is cut: a crash in between leaves the jump
    record followed by torn bytes, which the next writer cuts again (jumping from the
    new number, so still upwards). Torn bytes too few to hold a record are just cut.
    :returns: ``(header, next seq, data end)`` after the cut.
    """
    end = result.valid_end
    could_hold = (len(buf.rstrip(b"\0")) - end) // REC_OVERHEAD
    if could_hold > 0:
        resume = result.next_seq + could_hold
        _pwrite_all(fd, encode_jump(header.salt, resume), end)
        flush_fd(fd, data_only=True)
        end += REC_OVERHEAD
    else:
        resume = result.next_seq
    # Cutting drops the preallocated room too; the next append adds it back.
    os.ftruncate(fd, end)
    flush_fd(fd)
    return header, resume, end


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write every byte of *data* at *offset*, continuing after short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pwrite raises rather than returning 0; never loop forever
            raise OSError(5, "short write")
        view = view[n:]
        offset += n


def _room(end: int) -> int:
    """The file size to grow a preallocated WAL to when data must reach *end*: room of
    one chunk (doubling with the file, PREALLOC_MIN..PREALLOC_MAX), page-aligned."""
    chunk = min(max(end, PREALLOC_MIN), PREALLOC_MAX)
    return (end + chunk + _PAGE - 1) // _PAGE * _PAGE


def append(
    path: str, payloads: list[bytes], known: tuple[int, int, int] | None = None
) -> list[int]:
    """Append *payloads* as consecutive records and flush once; caller holds the lock.

    :param known: ``(salt, end, next_seq)`` of this file as the caller last left it
        (under the same lock). When the file still has that salt and nothing was
        written at that end since, the last record needs no re-verification: it is the
        caller's own, flushed append. Otherwise the tail is checked (and a torn one
        cut) as usual.
    :returns: the sequence numbers assigned, in order.
    :raises FileNotFoundError: when the WAL does not exist (caller creates it).
    :raises StorageError: on an OS error; nothing is acknowledged then.
    """
    return append_tracked(path, payloads, known)[0]


def append_tracked(
    path: str, payloads: list[bytes], known: tuple[int, int, int] | None = None
) -> tuple[list[int], int]:
    """:func:`append`, also returning the offset where the data now ends (the ``end``
    of the next call's *known*; a preallocated file is longer than its data)."""
    fd = _open_rw(path)
    try:
        held = None
        if known is not None:
            head = os.pread(fd, FILE_HEAD.size, 0)
            if len(head) == FILE_HEAD.size:
                fields = FILE_HEAD.unpack(head)
                if fields[4] == known[0]:  # same salt: the file the caller knows
                    held = (known[0], known[1], known[2], fields[3])
        return append_fd(fd, path, payloads, held)
    except OSError as exc:
        raise StorageError(f"could not read {path}: {exc.strerror}", path, exc.errno) from exc
    finally:
        os.close(fd)


def _open_rw(path: str) -> int:
    try:
        return open_regular(path, os.O_RDWR)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"could not open {path}: {exc.strerror}", path, exc.errno) from exc


def append_fd(
    fd: int, path: str, payloads: list[bytes], held: tuple[int, int, int, int] | None = None
) -> tuple[list[int], int]:
    """:func:`append_tracked` on a WAL the caller holds open (and locked).

    :param held: ``(salt, end, next_seq, flags)`` of this very file (same inode) as the
        caller last left it. A WAL's header is never rewritten in place, so salt and
        flags hold for as long as the file does; *end* is trusted only while the bytes
        there are still zero (or the file ends there): another writer's record means
        the caller is behind, and the tail is found and checked instead.
    :returns: the sequence numbers assigned, and the offset where the data now ends.
    :raises StorageError: on an OS error; nothing is acknowledged then.
    """
    seqs, new_end, end = stage_fd(fd, path, payloads, held)
    sync_fd(fd, path, end)
    return seqs, new_end


def stage_fd(
    fd: int,
    path: str,
    payloads: list[bytes],
    held: tuple[int, int, int, int] | None = None,
    *,
    start_writeout: bool = False,
) -> tuple[list[int], int, int]:
    """The first half of :func:`append_fd`: write the records, not yet durable.

    The caller must then either :func:`sync_fd` (and only then acknowledge) or
    :func:`unstage_fd`, holding the lock throughout. Splitting the append lets a caller
    do work that cannot fail (the store's in-memory mutation) while the device writes.

    :param start_writeout: start writing the records to the device now instead of at
        the flush, so that work overlaps the write. Python has no ``sync_file_range``;
        ``POSIX_FADV_DONTNEED`` starts writeback of the range's dirty pages too (the
        fallback PostgreSQL's ``pg_flush_data`` uses). Its other effect, dropping clean
        cached pages, misses these: they are dirty or under writeback when advised,
        and stay cached (checked with ``fincore``). Where it is missing the flush does
        it all.
    :returns: the sequence numbers, the new data end, and the old one (for
        :func:`sync_fd` / :func:`unstage_fd`).
    :raises StorageError: on an OS error; nothing was staged then.
    """
    try:
        size = os.fstat(fd).st_size
        if held is not None and (
            size == held[1]
            or (
                held[3] & FLAG_PREALLOC
                and size > held[1]
                and os.pread(fd, REC_HEAD.size, held[1]) == _ZERO_HEAD
            )
        ):
            salt, end, seq, flags = held
        else:
            header, seq, end = _tail_state(fd, path)
            salt, flags = header.salt, header.flags
            size = os.fstat(fd).st_size  # a torn tail may have been cut
        chunks = []
        seqs = []
        for p in payloads:
            chunks.append(encode_record(salt, seq, p))
            seqs.append(seq)
            seq += 1
        data = b"".join(chunks)
        n = len(data)
        new_end = end + n
        if flags & FLAG_PREALLOC and new_end > size:
            # Grow with zero-filled room in the same write and flush: this append pays
            # for the size change once, the next ones overwrite allocated blocks.
            data += bytes(_room(new_end) - new_end)
        try:
            _pwrite_all(fd, data, end)
        except OSError:
            unstage_fd(fd, end)
            raise
        if start_writeout and _FADV_DONTNEED is not None and fsync_enabled():
            try:  # noqa: SIM105 - hot path: no contextlib
                os.posix_fadvise(fd, end, n, _FADV_DONTNEED)
            except OSError:
                pass  # only an early start: the flush still writes everything
        return seqs, new_end, end
    except OSError as exc:
        raise StorageError(
            f"WAL append to {path} failed: {exc.strerror or exc}", path, exc.errno
        ) from exc


def sync_fd(fd: int, path: str, end: int) -> None:
    """Make records staged at *end* durable; on failure take them back and raise.

    :raises StorageError: the flush failed; the records were cut (best effort) and must
        not be acknowledged. A failed flush is never retried: the kernel may have
        dropped the dirty pages, so a second fdatasync could succeed without them.
    """
    try:
        flush_fd(fd, data_only=True)
    except OSError as exc:
        unstage_fd(fd, end)
        raise StorageError(
            f"WAL append to {path} failed: {exc.strerror or exc}", path, exc.errno
        ) from exc


def unstage_fd(fd: int, end: int) -> None:
    """Cut records staged at *end* (never acknowledged, so never to be visible: whole
    records written before a failed write or flush would otherwise verify and be
    replayed by readers). Best effort; if this fails too, readers see records that
    were never acknowledged."""
    try:  # noqa: SIM105 - hot path: no contextlib
        os.ftruncate(fd, end)
    except OSError:
        pass


def cut_torn_tail(path: str) -> bool:
    """Cut a torn tail of the WAL at *path* if it has one (caller holds the writer lock).

    :returns: whether bytes were cut. :raises WALError: on damage before the tail.
    """
    fd = _open_rw(path)
    try:
        before = os.fstat(fd).st_size
        _tail_state(fd, path)
        return os.fstat(fd).st_size < before
    finally:
        os.close(fd)


def append_jump(path: str, next_seq: int) -> bool:
    """Make the next record of the WAL at *path* number at least *next_seq* (caller
    holds the writer lock): a jump record, flushed, after a torn tail is cut. For a
    journal that ends below what its reader already applied (its tail was truncated at
    a record boundary), so new records are not numbered as ones applied before.

    :returns: whether a jump was needed. :raises WALError: on damage before the tail.
    """
    fd = _open_rw(path)
    try:
        header, seq, end = _tail_state(fd, path)
        if seq >= next_seq:
            return False
        _pwrite_all(fd, encode_jump(header.salt, next_seq), end)
        os.ftruncate(fd, end + REC_OVERHEAD)
        flush_fd(fd)
        return True
    finally:
        os.close(fd)


def tail(path: str) -> tuple[int, int]:
    """(generation, last record's seq) of the WAL at *path*; (0, 0) when absent or
    damaged. O(1) through the trailing length. Caller holds the lock (a torn tail is
    cut, as before an append)."""
    try:
        fd = open_regular(path, os.O_RDWR)
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        raise StorageError(f"could not open {path}: {exc.strerror}", path, exc.errno) from exc
    try:
        header, next_seq, _end = _tail_state(fd, path)
        return header.generation, next_seq - 1
    except WALError:
        return 0, 0  # a damaged WAL: the caller is replacing the state anyway
    except OSError as exc:
        raise StorageError(f"could not read {path}: {exc.strerror}", path, exc.errno) from exc
    finally:
        os.close(fd)


__all__ = [
    "FILE_MODE",
    "FLAG_DERIVED",
    "FLAG_PREALLOC",
    "KIND_SESSION",
    "KIND_WORKFLOW",
    "WALHeader",
    "WALRead",
    "append",
    "append_fd",
    "append_jump",
    "append_tracked",
    "stage_fd",
    "sync_fd",
    "unstage_fd",
    "create",
    "cut_torn_tail",
    "parse",
    "read",
    "read_from_fd",
    "tail",
]


def read_from_fd(
    fd: int, path: str, offset: int, salt: int, expect_seq: int
) -> tuple[list[tuple[int, bytes]], int]:
    """Records appended since *offset* (a known record boundary): (records, new end).

    Used by a writer that already replayed the file up to *offset*; it stops at the first
    record that does not verify (zero room, a torn tail, which the next append cuts, or
    damage, which :func:`parse` reports), or at a jump record with nothing after it.
    Reads one record header first, so the common
    answer (nothing new) costs one small ``pread``.
    """
    buf = os.pread(fd, REC_HEAD.size, offset)
    if buf == _ZERO_HEAD or not buf:
        return [], offset
    buf += os.pread(fd, max(0, os.fstat(fd).st_size - offset - len(buf)), offset + len(buf))
    out: list[tuple[int, bytes]] = []
    off = 0
    view = memoryview(buf)
    while off < len(buf):
        rec = _record_at(view, off, salt)
        if rec is None:
            break
        seq, payload, end = rec
        if payload is None:  # a jump record
            if seq < expect_seq:
                raise WALError(f"sequence goes back: {seq} < {expect_seq}", path)
            if _record_at(view, end, salt) is None:
                # Nothing after it yet: stop before it, so the caller's next append
                # finds a record at its cached end and takes its numbering from the
                # file (the caller's next_seq comes from the records returned).
                break
            expect_seq = seq
            off = end
            continue
        if seq != expect_seq:
            raise WALError(f"sequence gap: found {seq}, expected {expect_seq}", path)
        out.append((seq, payload))
        expect_seq += 1
        off = end
    return out, offset + off
