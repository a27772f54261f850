"""The frame: the one container format of every snapshot, checkpoint, record and blob.

Layout (little-endian, byte-level spec in ``docs/format.md``)::

    offset size field
    0      4    magic          b"CSTF"
    4      2    version        format version (1)
    6      1    kind           what the payload is (Kind)
    7      1    flags          bit 0: payload is zstd-compressed
    8      8    generation     bumped on every rewrite of the same file
    16     8    raw_len        payload length before compression
    24     8    stored_len     payload length as stored (bytes after the header)
    32     8    payload_sum    xxh3_64 of the stored payload
    40     8    header_sum     xxh3_64 of bytes 0..39
    48     ...  payload

Decoding checks, in order: length, header checksum, magic, version, kind, stored length
against the file's length (truncation and appended garbage are both errors), the payload
checksum, and only then decompresses, bounded by ``raw_len`` which must itself be under
a configured maximum (a forged length cannot exhaust memory).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from claude_state.errors import FrameError

MAGIC = b"CSTF"
VERSION = 1
HEADER = struct.Struct("<4sHBBQQQQ")  # 40 bytes, then an 8-byte header checksum
HEADER_SUM = struct.Struct("<Q")
HEADER_SIZE = HEADER.size + HEADER_SUM.size  # 48
FLAG_ZSTD = 0x01
KNOWN_FLAGS = FLAG_ZSTD

#: Payloads at least this long are compressed (below it zstd's frame overhead wins).
COMPRESS_THRESHOLD = 512
#: Largest payload a frame may declare (guards decompression); 1 GiB.
MAX_RAW_LEN = 1 << 30
ZSTD_LEVEL = 3
#: Payloads declaring more than this are decompressed in chunks (see _decompress_streaming).
STREAM_ABOVE = 8 << 20


class Kind(IntEnum):
    WORKFLOW = 1
    CHECKPOINT = 2
    SESSION = 3
    LEASE = 4
    BLOB = 5
    BUNDLE = 6
    META = 7


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    kind: int
    flags: int
    generation: int
    raw_len: int
    stored_len: int
    payload_sum: int


_xxh3_64: Any = None


def _xxh3(data: bytes | memoryview) -> int:
    global _xxh3_64
    if _xxh3_64 is None:  # bound once (see _json)
        import xxhash

        _xxh3_64 = xxhash.xxh3_64_intdigest
    return _xxh3_64(data)  # type: ignore[no-any-return]


_cctx: Any = None
_dctx: Any = None


def _compress(data: bytes) -> bytes:
    global _cctx
    if _cctx is None:
        import zstandard

        _cctx = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_checksum=True, write_content_size=True
        )
    return bytes(_cctx.compress(data))


def _decompress(data: bytes | memoryview, raw_len: int) -> bytes:
    global _dctx
    import zstandard

    if _dctx is None:
        _dctx = zstandard.ZstdDecompressor()
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise FrameError(f"bad zstd frame: {exc}") from exc
    if declared != raw_len:
        raise FrameError(f"zstd frame declares {declared} bytes, header says {raw_len}")
    try:
        if raw_len <= STREAM_ABOVE:
            out = _dctx.decompress(data, max_output_size=raw_len)
        else:
            out = _decompress_streaming(data, raw_len)
    except zstandard.ZstdError as exc:
        raise FrameError(f"zstd decompression failed: {exc}") from exc
    if len(out) != raw_len:
        raise FrameError(f"decompressed {len(out)} bytes, header says {raw_len}")
    return bytes(out)


def _decompress_streaming(data: bytes | memoryview, raw_len: int) -> bytes:
    """Decompress in 1 MiB chunks, so memory grows with the bytes that really come out.

    A one-shot decompress allocates the declared size up front: a forged frame (its
    checksums recomputed, its zstd header claiming up to :data:`MAX_RAW_LEN`) could make
    a tiny file allocate a gigabyte before being found short.
    """
    chunks = []
    total = 0
    with _dctx.stream_reader(data, read_across_frames=False) as reader:
        while True:
            chunk = reader.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > raw_len:
                raise FrameError(f"decompressed more than the {raw_len} bytes declared")
            chunks.append(chunk)
    return b"".join(chunks)


def encode(
    kind: int, payload: bytes, generation: int = 0, *, compress: bool | None = None
) -> bytes:
    """Frame *payload*: header + (possibly compressed) payload.

    :param compress: force compression on/off; by default payloads of at least
        :data:`COMPRESS_THRESHOLD` bytes are compressed when that makes them smaller.
    """
    raw_len = len(payload)
    if raw_len > MAX_RAW_LEN:
        raise FrameError(f"payload of {raw_len} bytes exceeds the {MAX_RAW_LEN}-byte maximum")
    flags = 0
    stored = payload
    if compress or (compress is None and raw_len >= COMPRESS_THRESHOLD):
        packed = _compress(payload)
        if compress or len(packed) < raw_len:
            stored = packed
            flags |= FLAG_ZSTD
    head = HEADER.pack(
        MAGIC, VERSION, int(kind), flags, generation, raw_len, len(stored), _xxh3(stored)
    )
    return b"".join((head, HEADER_SUM.pack(_xxh3(head)), stored))


def decode_header(data: bytes | memoryview, path: str | None = None) -> Header:
    """Parse and verify a frame header (not the payload)."""
    if len(data) < HEADER_SIZE:
        raise FrameError(f"truncated: {len(data)} bytes, a header needs {HEADER_SIZE}", path)
    head = bytes(data[: HEADER.size])
    (want,) = HEADER_SUM.unpack_from(data, HEADER.size)
    if _xxh3(head) != want:
        raise FrameError("header checksum mismatch", path)
    magic, version, kind, flags, gen, raw_len, stored_len, psum = HEADER.unpack(head)
    if magic != MAGIC:
        raise FrameError(f"not a claude-state frame (magic {magic!r})", path)
    if version != VERSION:
        raise FrameError(f"unsupported frame version {version} (this build reads {VERSION})", path)
    if flags & ~KNOWN_FLAGS:
        raise FrameError(f"unknown flags {flags:#x}", path)
    if raw_len > MAX_RAW_LEN:
        raise FrameError(f"declared size {raw_len} exceeds the maximum {MAX_RAW_LEN}", path)
    return Header(version, kind, flags, gen, raw_len, stored_len, psum)


def decode(data: bytes, kind: int | None = None, path: str | None = None) -> tuple[Header, bytes]:
    """Verify a whole frame and return its header and raw payload.

    :param kind: the expected kind; another kind is an error (a checkpoint is never read
        as a workflow).
    :raises FrameError: for any damage; never returns unverified bytes.
    """
    header = decode_header(data, path)
    if kind is not None and header.kind != int(kind):
        raise FrameError(f"expected a {Kind(kind).name} frame, found kind {header.kind}", path)
    body = memoryview(data)[HEADER_SIZE:]
    if len(body) != header.stored_len:
        what = "truncated" if len(body) < header.stored_len else "trailing bytes after frame"
        raise FrameError(
            f"{what}: payload is {len(body)} bytes, header says {header.stored_len}", path
        )
    if _xxh3(body) != header.payload_sum:
        raise FrameError("payload checksum mismatch", path)
    if header.flags & FLAG_ZSTD:
        try:
            payload = _decompress(body, header.raw_len)
        except FrameError as exc:
            raise FrameError(str(exc), path) from None
    else:
        if header.raw_len != header.stored_len:
            raise FrameError("raw and stored lengths differ on an uncompressed frame", path)
        payload = bytes(body)
    return header, payload


# -- JSON documents in frames -------------------------------------------------------------


_orjson: Any = None


def _json() -> Any:
    """orjson, imported on first use (this module is on the hook's hot path, which never
    parses JSON) and then held in a global: an ``import`` statement run on every call
    costs ~10 us once other work has evicted the import state from the CPU caches."""
    global _orjson
    import orjson

    _orjson = orjson
    return orjson


def dumps(obj: Any) -> bytes:
    """Serialise a JSON document (orjson; non-string keys are an error, not a surprise)."""
    try:
        return (_orjson or _json()).dumps(obj)  # type: ignore[no-any-return]
    except TypeError as exc:
        from claude_state.errors import InvalidInputError

        raise InvalidInputError(f"value is not JSON-serialisable: {exc}") from exc


def loads(data: bytes | str, path: str | None = None) -> Any:
    orjson = _orjson or _json()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"payload is not valid JSON: {exc}", path) from exc


def encode_doc(kind: int, obj: Any, generation: int = 0) -> bytes:
    return encode(kind, dumps(obj), generation)


def decode_doc(data: bytes, kind: int | None = None, path: str | None = None) -> tuple[Header, Any]:
    header, payload = decode(data, kind, path)
    return header, loads(payload, path)
