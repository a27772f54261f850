"""Durable file primitives: flushes that mean it, and atomic whole-file replacement.

A whole-file write goes to a temp file in ``temp/`` (same file system), is flushed,
renamed over the target and the directory is flushed. A reader therefore sees the old
file or the new one, never a mix. A failed flush is never retried and reported as
success (after a failed fsync the kernel may have dropped the dirty pages; "fsyncgate").

On macOS ``fsync`` does not flush the drive cache; ``fcntl(F_FULLFSYNC)`` does.
``CLAUDE_STATE_FSYNC=0`` turns flushing off (benchmarks of the CPU cost only; unsafe).

Hot path module: stdlib only.
"""

import errno as _errno
import os
import sys

from claude_state.errors import StorageError
from claude_state.storage.layout import FILE_MODE, env_flag, temp_name

_FULLFSYNC = getattr(__import__("fcntl"), "F_FULLFSYNC", None) if sys.platform == "darwin" else None


def fsync_enabled() -> bool:
    return env_flag("CLAUDE_STATE_FSYNC", "0")


def flush_fd(fd: int, data_only: bool = False) -> None:
    """Make what was written to *fd* durable (fdatasync/fsync/F_FULLFSYNC)."""
    if not fsync_enabled():
        return
    if _FULLFSYNC is not None:
        import fcntl

        fcntl.fcntl(fd, _FULLFSYNC)
        return
    if data_only and hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def fsync_dir(path: str) -> None:
    """Flush a directory so a rename or create inside it is durable."""
    if not fsync_enabled():
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of *data*, continuing after short writes."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - os.write raises rather than returning 0
            raise OSError(_errno.EIO, "short write")
        view = view[n:]


def atomic_write(path: str, data: bytes, temp_dir: str, mode: int = FILE_MODE) -> None:
    """Replace *path* with *data* atomically and durably.

    :param temp_dir: staging folder on the same file system (``<state>/temp``).
    :raises StorageError: on any OS error; the previous *path* is then intact and no
        temp file is left behind.
    """
    tmp = temp_name(temp_dir)
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        write_all(fd, data)
        flush_fd(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        tmp = ""
        fsync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        raise StorageError(
            f"could not write {path}: {exc.strerror or exc}", path=path, errno=exc.errno
        ) from exc
    finally:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def read_file(path: str) -> bytes:
    """Read a whole regular file, never through a symlink or from a FIFO (``safeio``).

    :raises FileNotFoundError: passes through for callers to map."""
    from claude_state.storage.safeio import read_regular

    return read_regular(path)


def remove(path: str, missing_ok: bool = True) -> bool:
    """Unlink *path* and flush its directory. :returns: whether a file was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    except OSError as exc:
        raise StorageError(f"could not remove {path}: {exc.strerror}", path, exc.errno) from exc
    fsync_dir(os.path.dirname(path) or ".")
    return True
