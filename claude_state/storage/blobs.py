"""Content-addressed blobs: large values stored once, referenced from documents.

A blob's name is the xxh3-128 digest (hex) of its raw bytes; the file is a frame of kind
BLOB under ``blobs/<first two hex>/<digest>.blob``. Identical outputs are stored once,
documents and checkpoints carry only ``{"$blob": digest, "size": n}``, and loads stay
small whatever the outputs weigh: values are read only when asked for.

xxh3-128 is not cryptographic; it is used because it runs at memory speed and 128 bits
make an accidental collision negligible. The digest is re-checked on every read, so a
damaged blob is reported, never returned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from claude_state.errors import FrameError, IntegrityError, NotFoundError
from claude_state.storage import frame
from claude_state.storage.atomic import atomic_write, read_file
from claude_state.storage.layout import StateDir, _makedirs

BLOB_KEY = "$blob"
#: Values whose JSON is larger than this go to blobs (bytes).
DEFAULT_THRESHOLD = 16 * 1024


def digest(data: bytes) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(data)


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and BLOB_KEY in value and len(value) <= 3


class BlobStore:
    """Blobs of one state directory."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def put(self, data: bytes) -> dict[str, Any]:
        """Store *data* (once) and return its reference ``{"$blob", "size"}``."""
        h = digest(data)
        path = self.state.blob(h)
        try:
            # Reused: refresh its mtime so gc's one-hour grace period covers the new
            # reference being written (gc sweeps only unreferenced blobs older than that).
            os.utime(path)
        except FileNotFoundError:
            _makedirs(os.path.dirname(path))
            atomic_write(path, frame.encode(frame.Kind.BLOB, data), self.state.temp)
        except OSError:
            pass  # exists but not ours to touch (read-only state): still a valid blob
        else:
            # The reference about to be acknowledged must be readable: a damaged copy
            # (bit rot, truncation) is replaced, never reused (a read is still cheaper
            # than the write and flush it saves).
            try:
                self.get(h)
            except (NotFoundError, IntegrityError):  # damaged, or a foreign object
                atomic_write(path, frame.encode(frame.Kind.BLOB, data), self.state.temp)
        return {BLOB_KEY: h, "size": len(data)}

    def get(self, ref: dict[str, Any] | str) -> bytes:
        """The bytes of a blob, verified. :raises NotFoundError: :raises FrameError:"""
        h = ref[BLOB_KEY] if isinstance(ref, dict) else ref
        path = self.state.blob(h)
        try:
            raw = read_file(path)  # never through a symlink or from a FIFO
        except FileNotFoundError:
            raise NotFoundError("blob", h) from None
        _header, data = frame.decode(raw, frame.Kind.BLOB, path)
        if digest(data) != h:
            raise FrameError("blob content does not match its digest", path)
        return data

    def put_value(self, value: Any) -> dict[str, Any]:
        return self.put(frame.dumps(value))

    def get_value(self, ref: dict[str, Any]) -> Any:
        return frame.loads(self.get(ref))

    def externalize(self, value: Any, threshold: int = DEFAULT_THRESHOLD) -> Any:
        """*value* itself when small, else a blob reference to it."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        data = frame.dumps(value)
        if len(data) <= threshold:
            return value
        return self.put(data)

    def resolve(self, value: Any) -> Any:
        """The value behind a reference (or *value* itself when it is not one)."""
        return self.get_value(value) if is_ref(value) else value

    def exists(self, h: str) -> bool:
        return os.path.exists(self.state.blob(h))

    def delete(self, h: str) -> bool:
        try:
            os.unlink(self.state.blob(h))
            return True
        except FileNotFoundError:
            return False

    def __iter__(self) -> Iterator[str]:
        """Every stored digest."""
        try:
            shards = os.listdir(self.state.blobs)
        except FileNotFoundError:
            return
        for shard in sorted(shards):
            d = os.path.join(self.state.blobs, shard)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if name.endswith(".blob"):
                    yield name[: -len(".blob")]


def collect_refs(value: Any, out: set[str] | None = None) -> set[str]:
    """Every blob digest referenced anywhere inside a JSON value (for gc marking)."""
    out = set() if out is None else out
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if is_ref(v) and isinstance(v.get(BLOB_KEY), str):
                out.add(v[BLOB_KEY])
            else:
                stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out
