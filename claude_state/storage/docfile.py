"""Framed JSON documents on disk: one atomic write, one verified read."""

from __future__ import annotations

from typing import Any

from claude_state.storage import frame
from claude_state.storage.atomic import atomic_write
from claude_state.storage.safeio import read_regular


def write_doc(path: str, kind: int, obj: Any, temp_dir: str, generation: int = 0) -> int:
    """Atomically write *obj* as a frame of *kind*. :returns: bytes written."""
    data = frame.encode_doc(kind, obj, generation)
    atomic_write(path, data, temp_dir)
    return len(data)


def read_doc(path: str, kind: int) -> tuple[frame.Header, Any]:
    """Read and verify a framed document.

    :raises FileNotFoundError: when absent (callers map it to their NotFoundError).
    :raises FrameError: when damaged.
    :raises ForeignObjectError: a symlink, FIFO, device or folder is there.
    """
    return frame.decode_doc(read_regular(path), kind, path)
