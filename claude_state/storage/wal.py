"""Write-ahead log: append-only, checksummed, salted records with a cuttable torn tail.

File layout (little-endian; full spec in ``docs/format.md``)::

    header (40 bytes): magic b"CSWL", version u16, kind u8, flags u8, salt u64,
                       generation u64, base_seq u64, header_sum u64 (xxh3_64 of 0..31)
    record:            length u32, seq u64, payload[length],
                       checksum u64, length u32, end magic b"CSWE"

``checksum`` is xxh3_64 of ``length|seq|payload`` seeded with the file's salt, so a
record copied from another WAL generation never verifies. The trailing length lets a
writer find and verify the *last* record in O(1) from the end of the file.

Invariants:

* Writers hold the subject's :class:`~claude_state.storage.locks.FileLock`. Before
  appending, a writer verifies the last record; if it does not verify (a writer was
  killed mid-append), the torn tail is cut first. So damage that is *not* at the tail is
  never the result of a crash: a reader that finds a bad record followed by a good last
  record reports corruption (:class:`~claude_state.errors.WALError`) instead of silently
  dropping the good records after it.
* Readers never lock; a record being appended concurrently fails its checksum and is
  treated as not yet written.
* Sequence numbers start at ``base_seq`` and increase by one per record.
* An append is durable when :func:`append` returns (fdatasync), and several payloads
  passed together share one flush (group commit).

Hot path module: stdlib and ``xxhash`` only.
"""

from __future__ import annotations

import os
import struct

from claude_state.errors import StorageError, WALError
from claude_state.storage.atomic import atomic_write, flush_fd, write_all
from claude_state.storage.layout import FILE_MODE

MAGIC = b"CSWL"
END = b"CSWE"
VERSION = 1
FILE_HEAD = struct.Struct("<4sHBBQQQ")  # 32 bytes + u64 checksum
FILE_HEAD_SIZE = FILE_HEAD.size + 8  # 40
REC_HEAD = struct.Struct("<IQ")  # 12
REC_FOOT = struct.Struct("<QI4s")  # 16
REC_OVERHEAD = REC_HEAD.size + REC_FOOT.size  # 28
MAX_RECORD = 256 << 20

#: Header flag: this generation's snapshot is exactly the previous generation replayed
#: (a compaction), so ``.prev`` snapshot + ``.prev`` WAL can rebuild it without loss.
FLAG_DERIVED = 0x01

# WAL kinds
KIND_WORKFLOW = 1
KIND_SESSION = 2


def _xxh(data: bytes | memoryview, seed: int = 0) -> int:
    import xxhash

    return xxhash.xxh3_64_intdigest(data, seed)


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

    __slots__ = ("header", "records", "valid_end", "size", "next_seq")

    def __init__(
        self,
        header: WALHeader,
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

    @property
    def torn(self) -> bool:
        """True when bytes after the last valid record were ignored (a torn tail)."""
        return self.size > self.valid_end


def encode_header(kind: int, salt: int, generation: int, base_seq: int, flags: int = 0) -> bytes:
    head = FILE_HEAD.pack(MAGIC, VERSION, kind, flags, salt, generation, base_seq)
    return head + struct.pack("<Q", _xxh(head))


def parse_header(data: bytes, path: str | None = None) -> WALHeader:
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


def _record_at(buf: bytes | memoryview, off: int, salt: int) -> tuple[int, bytes, int] | None:
    """Decode the record at *off*: (seq, payload, end offset), or None if invalid."""
    size = len(buf)
    if off + REC_OVERHEAD > size:
        return None
    n, seq = REC_HEAD.unpack_from(buf, off)
    end = off + REC_OVERHEAD + n
    if n > MAX_RECORD or end > size:
        return None
    csum, n2, magic = REC_FOOT.unpack_from(buf, end - REC_FOOT.size)
    if n2 != n or magic != END:
        return None
    body = bytes(buf[off : off + REC_HEAD.size + n])
    if _xxh(body, salt) != csum:
        return None
    return seq, body[REC_HEAD.size :], end


def _last_record(buf: bytes | memoryview, salt: int) -> tuple[int, int, int] | None:
    """Locate and verify the final record from the end: (start, seq, end) or None."""
    size = len(buf)
    if size < FILE_HEAD_SIZE + REC_OVERHEAD:
        return None
    _csum, n, magic = REC_FOOT.unpack_from(buf, size - REC_FOOT.size)
    if magic != END:
        return None
    start = size - REC_OVERHEAD - n
    if start < FILE_HEAD_SIZE:
        return None
    rec = _record_at(buf, start, salt)
    if rec is None or rec[2] != size:
        return None
    return start, rec[0], size


def parse(buf: bytes, path: str | None = None, after_seq: int = -1) -> WALRead:
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
            last = _last_record(view, header.salt)
            if last is not None and last[0] > off:
                raise WALError(
                    f"record at offset {off} is damaged but later records are intact "
                    "(corruption, not a torn tail)",
                    path,
                )
            break  # torn tail: ignored by readers, cut by the next writer
        seq, payload, end = rec
        if seq != expect:
            raise WALError(f"sequence gap at offset {off}: found {seq}, expected {expect}", path)
        if seq > after_seq:
            result.records.append((seq, payload))
        expect = seq + 1
        off = end
    result.valid_end = off
    result.next_seq = expect
    return result


def read(path: str, after_seq: int = -1) -> WALRead:
    """Read and verify the WAL at *path* (lock-free). :raises FileNotFoundError:"""
    with open(path, "rb") as f:
        buf = f.read()
    return parse(buf, path, after_seq)


def create(
    path: str, temp_dir: str, *, kind: int, generation: int, base_seq: int, flags: int = 0
) -> WALHeader:
    """Atomically (re)place *path* with an empty WAL of a new generation and salt."""
    salt = int.from_bytes(os.urandom(8), "little")
    atomic_write(path, encode_header(kind, salt, generation, base_seq, flags), temp_dir)
    return WALHeader(kind, salt, generation, base_seq, flags)


def _tail_state(fd: int, path: str) -> tuple[WALHeader, int, int]:
    """(header, next_seq, valid_end) of an open WAL, cutting a torn tail if present.

    Fast path: verify only the last record (two preads). Slow path, only after a crash
    left a torn tail: scan the whole file, truncate to the last valid record, flush.
    """
    size = os.fstat(fd).st_size
    head = os.pread(fd, FILE_HEAD_SIZE, 0)
    header = parse_header(head, path)
    if size == FILE_HEAD_SIZE:
        return header, header.base_seq, size
    foot = (
        os.pread(fd, REC_FOOT.size, size - REC_FOOT.size)
        if size >= FILE_HEAD_SIZE + REC_OVERHEAD
        else b""
    )
    if len(foot) == REC_FOOT.size:
        _c, n, magic = REC_FOOT.unpack(foot)
        start = size - REC_OVERHEAD - n
        if magic == END and start >= FILE_HEAD_SIZE:
            rec = os.pread(fd, REC_OVERHEAD + n, start)
            got = _record_at(rec, 0, header.salt)
            if got is not None and got[2] == len(rec):
                return header, got[0] + 1, size
    # Slow path: torn tail (or damage). parse() raises on damage before the tail.
    buf = os.pread(fd, size, 0)
    result = parse(buf, path)
    if result.valid_end < size:
        os.ftruncate(fd, result.valid_end)
        flush_fd(fd)
    return header, result.next_seq, result.valid_end


def append(
    path: str, payloads: list[bytes], known: tuple[int, int, int] | None = None
) -> list[int]:
    """Append *payloads* as consecutive records and flush once; caller holds the lock.

    :param known: ``(salt, end, next_seq)`` of this file as the caller last left it
        (under the same lock). When the file still has that salt and length, the last
        record needs no re-verification: it is the caller's own, flushed append.
        Otherwise the tail is checked (and a torn one cut) as usual.
    :returns: the sequence numbers assigned, in order.
    :raises FileNotFoundError: when the WAL does not exist (caller creates it).
    :raises StorageError: on an OS error; nothing is acknowledged then.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"could not open {path}: {exc.strerror}", path, exc.errno) from exc
    try:
        salt = -1
        if known is not None and os.fstat(fd).st_size == known[1]:
            head = os.pread(fd, FILE_HEAD.size, 0)
            if len(head) == FILE_HEAD.size and FILE_HEAD.unpack(head)[4] == known[0]:
                salt, end, seq = known
        if salt == -1:
            header, seq, end = _tail_state(fd, path)
            salt = header.salt
        chunks = []
        seqs = []
        for p in payloads:
            chunks.append(encode_record(salt, seq, p))
            seqs.append(seq)
            seq += 1
        data = b"".join(chunks)
        os.lseek(fd, end, os.SEEK_SET)
        try:
            write_all(fd, data)
            flush_fd(fd, data_only=True)
        except OSError:
            # Never acknowledged, so never visible: whole records written before a
            # failed write or flush would otherwise verify and be replayed by readers.
            # Best effort; if this fails too, readers see the records (unacknowledged).
            try:  # noqa: SIM105 - hot path: no contextlib
                os.ftruncate(fd, end)
            except OSError:
                pass
            raise
        return seqs
    except OSError as exc:
        # Never retry a failed flush (the kernel may have dropped the dirty pages).
        raise StorageError(
            f"WAL append to {path} failed: {exc.strerror or exc}", path, exc.errno
        ) from exc
    finally:
        os.close(fd)


def tail(path: str) -> tuple[int, int]:
    """(generation, last record's seq) of the WAL at *path*; (0, 0) when absent or
    damaged. O(1) through the trailing length. Caller holds the lock (a torn tail is
    cut, as before an append)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
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
    "KIND_SESSION",
    "KIND_WORKFLOW",
    "WALHeader",
    "WALRead",
    "append",
    "create",
    "parse",
    "read",
]


def read_from(
    path: str, offset: int, salt: int, expect_seq: int
) -> tuple[list[tuple[int, bytes]], int]:
    """Records appended since *offset* (a known record boundary): (records, new end).

    Used by a writer that already replayed the file up to *offset*; it stops at the first
    record that does not verify (a torn tail, which the next :func:`append` cuts, or
    damage, which :func:`parse` reports).
    """
    with open(path, "rb") as f:
        f.seek(offset)
        buf = f.read()
    out: list[tuple[int, bytes]] = []
    off = 0
    view = memoryview(buf)
    while off < len(buf):
        rec = _record_at(view, off, salt)
        if rec is None:
            break
        seq, payload, end = rec
        if seq != expect_seq:
            raise WALError(f"sequence gap: found {seq}, expected {expect_seq}", path)
        out.append((seq, payload))
        expect_seq += 1
        off = end
    return out, offset + off
