"""docs/format.md states byte offsets and constants; these tests hold it to the code."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from claude_state.storage import frame, wal

DOC = (Path(__file__).parent.parent / "docs" / "format.md").read_text()


def _table_rows(heading: str) -> list[list[str]]:
    section = DOC.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## ") or (rows and not line.startswith("|")):
            break  # the table ended
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # drop the header row


def test_frame_table_matches_the_struct() -> None:
    rows = _table_rows("## Frame")
    offsets = [(int(r[0]), int(r[1]) if r[1].isdigit() else None, r[2]) for r in rows]
    assert [o[2] for o in offsets] == [
        "magic",
        "version",
        "kind",
        "flags",
        "generation",
        "raw_len",
        "stored_len",
        "payload_sum",
        "header_sum",
        "payload",
    ]
    # Offsets follow the struct layout exactly.
    fmt_sizes = [4, 2, 1, 1, 8, 8, 8, 8, 8]
    pos = 0
    for (off, size, _name), want in zip(offsets, fmt_sizes, strict=False):
        assert off == pos and size == want
        pos += want
    assert offsets[-1][0] == frame.HEADER_SIZE == 48
    assert frame.HEADER.size + frame.HEADER_SUM.size == 48
    assert f"`{frame.MAGIC.decode()}`" in rows[0][3]
    kinds = rows[2][3]
    for k in frame.Kind:
        assert f"{int(k)} {k.name.lower()}" in kinds


def test_frame_constants_in_prose() -> None:
    assert f"Payloads of {frame.COMPRESS_THRESHOLD} bytes" in DOC
    assert frame.MAX_RAW_LEN == 1 << 30 and "`raw_len` <= 1 GiB" in DOC
    assert f"zstd level {frame.ZSTD_LEVEL}" in DOC


def test_wal_header_and_record_tables_match() -> None:
    rows = _table_rows("Header, 40 bytes:")
    assert [int(r[0]) for r in rows] == [0, 4, 6, 7, 8, 16, 24, 32]
    assert wal.FILE_HEAD_SIZE == 40 and f"magic `{wal.MAGIC.decode()}`" in rows[0][2]
    rec = _table_rows("Record, 28 bytes of overhead:")
    assert wal.REC_OVERHEAD == 28
    sizes = [r[0] for r in rec]
    assert sizes == ["4", "8", "n", "8", "4", "4"]
    assert f"`{wal.END.decode()}`" in rec[-1][1]
    assert wal.MAX_RECORD == 256 << 20 and "at most 256 MiB" in rec[0][1]
    flags = rows[3][2]
    assert wal.FLAG_DERIVED == 1 << 0 and "bit 0 `derived`" in flags
    assert wal.FLAG_PREALLOC == 1 << 1 and "bit 1 `prealloc`" in flags


def test_wal_room_policy_matches(tmp_path: Path) -> None:
    """The documented growth rule, checked on a real file."""
    assert (wal.PREALLOC_MIN, wal.PREALLOC_MAX) == (64 << 10, 1 << 20)
    assert "clamped to 64 KiB..1 MiB" in DOC and "rounded\n  up to 4 KiB" in DOC
    path = str(tmp_path / "w.wal")
    (tmp_path / "t").mkdir()
    wal.create(path, str(tmp_path / "t"), kind=1, generation=1, base_seq=1, flags=wal.FLAG_PREALLOC)
    _seqs, end = wal.append_tracked(path, [b"x" * 100])
    assert end == wal.FILE_HEAD_SIZE + wal.REC_OVERHEAD + 100
    room = end + (64 << 10)
    assert os.path.getsize(path) == (room + 4095) // 4096 * 4096
    assert Path(path).read_bytes()[end:] == bytes(os.path.getsize(path) - end)
    _seqs, end2 = wal.append_tracked(path, [b"y" * (2 << 20)])  # past 1 MiB: chunk capped
    assert os.path.getsize(path) == (end2 + (1 << 20) + 4095) // 4096 * 4096


def test_a_real_frame_has_the_documented_bytes() -> None:
    data = frame.encode(frame.Kind.SESSION, b"x" * 10, generation=7)
    magic, version, kind, flags, gen, raw, stored, _ = struct.unpack_from("<4sHBBQQQQ", data)
    assert (magic, version, kind, flags, gen, raw, stored) == (b"CSTF", 1, 3, 0, 7, 10, 10)
    assert data[48:] == b"x" * 10


def test_documented_thresholds_match_the_store() -> None:
    from claude_state.domain import store

    assert store.BLOB_THRESHOLD == 64 * 1024 and "larger than 64 KiB" in DOC
    assert store.COMPACT_BYTES == 4 << 20 and "passes 4 MiB" in DOC
    assert re.search(r"`\.claude/state/`", DOC)
