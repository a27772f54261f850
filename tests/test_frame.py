"""Frame codec: round trips, and every kind of damage is a FrameError (RELIABILITY §3, §7)."""

from __future__ import annotations

import contextlib
import random
import struct
import tracemalloc

import pytest
import xxhash
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_state.errors import FrameError, IntegrityError
from claude_state.storage import frame
from claude_state.storage.frame import HEADER, HEADER_SIZE, MAX_RAW_LEN, Kind

PLAIN = frame.encode(Kind.WORKFLOW, b'{"a": 1, "b": [1, 2, 3]}', 7, compress=False)
TEXT = b"def f(x):\n    return x + 1\n" * 200
PACKED = frame.encode(Kind.CHECKPOINT, TEXT, 3, compress=True)


def reforge(
    data: bytes,
    *,
    raw_len: int | None = None,
    kind: int | None = None,
    payload: bytes | None = None,
) -> bytes:
    """Rewrite header fields and re-checksum everything, as a deliberate forger would."""
    magic, ver, k, flags, gen, rl, sl, _psum = HEADER.unpack_from(data)
    body = data[HEADER_SIZE:] if payload is None else payload
    head = HEADER.pack(
        magic,
        ver,
        k if kind is None else kind,
        flags,
        gen,
        rl if raw_len is None else raw_len,
        len(body),
        xxhash.xxh3_64_intdigest(body),
    )
    return head + struct.pack("<Q", xxhash.xxh3_64_intdigest(head)) + body


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=4096) | st.text(max_size=3000).map(str.encode),
    kind=st.sampled_from(list(Kind)),
    generation=st.integers(0, 2**64 - 1),
    compress=st.sampled_from([None, True, False]),
)
def test_round_trip(payload: bytes, kind: Kind, generation: int, compress: bool | None) -> None:
    data = frame.encode(kind, payload, generation, compress=compress)
    header, out = frame.decode(data, kind)
    assert out == payload
    assert header.kind == kind and header.generation == generation
    assert header.raw_len == len(payload)
    assert bool(header.flags & frame.FLAG_ZSTD) == (
        compress is True or (compress is None and len(data) - HEADER_SIZE < len(payload))
    )


def test_compression_is_used_and_pays() -> None:
    header, _ = frame.decode(PACKED)
    assert header.flags & frame.FLAG_ZSTD
    assert len(PACKED) < len(TEXT) // 10


@pytest.mark.parametrize("data", [PLAIN, PACKED], ids=["plain", "zstd"])
def test_every_truncation_is_an_error(data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(FrameError):
            frame.decode(data[:cut])


@pytest.mark.parametrize("data", [PLAIN, PACKED], ids=["plain", "zstd"])
def test_bit_flips(data: bytes) -> None:
    rng = random.Random(1)
    header_bits = range(HEADER_SIZE * 8)
    payload_bits = rng.sample(
        range(HEADER_SIZE * 8, len(data) * 8), min(400, (len(data) - HEADER_SIZE) * 8)
    )
    for bit in [*header_bits, *payload_bits]:
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FrameError):
            frame.decode(bytes(damaged))


@pytest.mark.parametrize("data", [PLAIN, PACKED], ids=["plain", "zstd"])
def test_zeroed_block_and_garbage_appended(data: bytes) -> None:
    for extra in (b"\0", b"x" * 100, data):
        with pytest.raises(FrameError, match="trailing"):
            frame.decode(data + extra)
    zeroed = bytes(min(len(data), 4096)) + data[4096:]
    with pytest.raises(FrameError):
        frame.decode(zeroed)


def test_wrong_kind() -> None:
    frame.decode(PLAIN, Kind.WORKFLOW)
    with pytest.raises(FrameError, match="expected a CHECKPOINT"):
        frame.decode(PLAIN, Kind.CHECKPOINT)
    with pytest.raises(FrameError):
        frame.decode_doc(frame.encode_doc(Kind.LEASE, {"x": 1}), Kind.SESSION)


def test_frame_error_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        frame.decode(b"nope")


@pytest.mark.parametrize("raw_len", [1 << 40, MAX_RAW_LEN + 1, 2**64 - 1])
def test_forged_raw_len_cannot_exhaust_memory(raw_len: int) -> None:
    forged = reforge(PACKED, raw_len=raw_len)
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="exceeds the maximum"):
            frame.decode(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_forged_raw_len_under_maximum_is_refused_before_allocation() -> None:
    """raw_len within MAX_RAW_LEN but disagreeing with the zstd frame: refused up front."""
    forged = reforge(PACKED, raw_len=MAX_RAW_LEN)
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="declares"):
            frame.decode(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_zstd_content_size_mismatch() -> None:
    other = zstandard.ZstdCompressor(write_content_size=True).compress(TEXT + b"!")
    with pytest.raises(FrameError, match="declares"):
        frame.decode(reforge(PACKED, payload=other))
    # a frame without a declared content size is refused too
    nosize = zstandard.ZstdCompressor(write_content_size=False).compress(TEXT)
    with pytest.raises(FrameError):
        frame.decode(reforge(PACKED, payload=nosize))


def test_zstd_garbage_with_valid_checksums() -> None:
    good = PACKED[HEADER_SIZE:]
    bad = good[:6] + bytes(b ^ 0x5A for b in good[6:])
    with pytest.raises(FrameError):
        frame.decode(reforge(PACKED, payload=bad))


def test_uncompressed_length_mismatch() -> None:
    with pytest.raises(FrameError, match="differ"):
        frame.decode(reforge(PLAIN, raw_len=3))


def test_json_document_damage() -> None:
    bad = frame.encode(Kind.WORKFLOW, b"{not json", compress=False)
    with pytest.raises(FrameError, match="JSON"):
        frame.decode_doc(bad, Kind.WORKFLOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_never_untyped(data: bytes) -> None:
    for blob in (data, frame.MAGIC + data, PACKED[:HEADER_SIZE] + data):
        with contextlib.suppress(FrameError):
            frame.decode_doc(blob)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutations_of_a_valid_frame(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([PLAIN, PACKED]))
    pos = data.draw(st.integers(0, len(base) - 1))
    val = data.draw(st.integers(0, 255).filter(lambda v: v != base[pos]))
    damaged = base[:pos] + bytes([val]) + base[pos + 1 :]
    with pytest.raises(FrameError):
        frame.decode(damaged)


def test_forged_zstd_frame_with_recomputed_checksums_stays_bounded() -> None:
    """The hardest forgery: both checksums recomputed and the zstd frame header itself
    pledging 900 MB, over 1,000 real bytes. One-shot decompression would allocate the
    pledged size up front; frames above STREAM_ABOVE are decompressed in chunks."""
    import tracemalloc

    import xxhash
    import zstandard

    cobj = zstandard.ZstdCompressor(write_content_size=True).compressobj(size=900_000_000)
    forged = cobj.compress(b"x" * 1000) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    assert zstandard.frame_content_size(forged) == 900_000_000
    head = frame.HEADER.pack(
        frame.MAGIC,
        frame.VERSION,
        1,
        frame.FLAG_ZSTD,
        0,
        900_000_000,
        len(forged),
        xxhash.xxh3_64_intdigest(forged),
    )
    data = head + frame.HEADER_SUM.pack(xxhash.xxh3_64_intdigest(head)) + forged
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match="header says 900000000"):
            frame.decode(data, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_large_frames_round_trip_through_the_streaming_path() -> None:
    payload = bytes(range(256)) * ((frame.STREAM_ABOVE // 256) + 4096)
    assert len(payload) > frame.STREAM_ABOVE
    _h, out = frame.decode(frame.encode(1, payload), 1)
    assert out == payload
