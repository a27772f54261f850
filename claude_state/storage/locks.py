"""Writer locks: ``flock`` on a per-subject lock file.

Writers lock for read-modify-write and appends (Claude Code runs ``PostToolUse`` hooks
in parallel). Readers never lock: snapshots appear by rename and a half-written WAL tail
fails its checksum. The kernel drops an ``flock`` when its holder dies, so a writer
killed with -9 never blocks the next one.

A lock file is only ever unlinked by a holder of its lock (a workflow's ``delete``), and
every acquirer checks, once it holds the ``flock``, that the file it locked still has a
name (``st_nlink > 0``); if not, it opens the path again. Without that check a writer
that opened the file before the unlink and one that created the new file could both
proceed. The same check is what lets a lock be *kept open* between uses
(``keep_open``): a step update then costs an ``flock`` and an ``fstat`` on an fd it
already has, not an ``open`` and a ``close`` of a path.

``CLAUDE_STATE_UNSAFE_NO_LOCKS=1`` disables locking. It exists only so the concurrency
tests can show that they do detect lost updates when the lock is off.

Hot path module: stdlib only.
"""

import fcntl
import os
import time

from claude_state.errors import LockTimeoutError, StorageError
from claude_state.storage.layout import env_flag
from claude_state.storage.safeio import open_regular

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing-only: keep the hot path's imports minimal
    from types import TracebackType


def locking_enabled() -> bool:
    return env_flag("CLAUDE_STATE_UNSAFE_NO_LOCKS", "1")


class FileLock:
    """An exclusive ``flock`` on *path*, usable as a context manager.

    :param timeout: seconds to wait; ``None`` waits forever.
    :param keep_open: keep the fd between uses (release unlocks, :meth:`close` closes).
        An ``flock`` belongs to the open file, which a forked child shares, so a kept
        lock is reopened in a process other than the one that opened it. Not for
        sharing between threads: two threads locking one open file both get in.
    """

    __slots__ = ("path", "timeout", "_fd", "_keep", "_locked", "_pid")

    def __init__(self, path: str, timeout: float | None = 30.0, *, keep_open: bool = False) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = -1
        self._keep = keep_open
        self._locked = False
        self._pid = 0

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            fd = self._fd
            if fd >= 0 and self._pid != os.getpid():
                self._fd = fd = -1  # a forked child's copy: its flock is the parent's
            if fd < 0:
                try:
                    # Never through a symlink, never a FIFO or device (safeio): a
                    # planted lock must not create or open files outside the state.
                    fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
                except OSError as exc:
                    raise StorageError(
                        f"could not open lock {self.path}: {exc.strerror}", self.path, exc.errno
                    ) from exc
                self._fd, self._pid = fd, os.getpid()
            if not locking_enabled():
                self._locked = True
                return
            try:
                if deadline is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    self._acquire_polling(fd, deadline)
                if os.fstat(fd).st_nlink > 0:
                    self._locked = True
                    return
            except BaseException:
                self._close()
                raise
            # Unlinked by the holder we waited for: lock whatever the path names now.
            self._close()

    def _acquire_polling(self, fd: int, deadline: float) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        delay = 0.0005
        while True:
            if time.monotonic() >= deadline:
                raise LockTimeoutError(self.path, self.timeout or 0.0) from None
            time.sleep(delay)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                delay = min(delay * 2, 0.02)

    def release(self) -> None:
        if not self._locked:
            return
        self._locked = False
        if not self._keep:
            self._close()  # closing drops the flock
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            self._close()  # the fd is no longer usable: closing drops the flock anyway

    def close(self) -> None:
        """Release the lock if held and close the fd (a kept lock reopens on next use)."""
        self._locked = False
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            if self._pid == os.getpid():
                try:  # noqa: SIM105 - hot path: no contextlib
                    os.close(fd)
                except OSError:
                    pass

    @property
    def held(self) -> bool:
        return self._locked

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: "TracebackType | None",
    ) -> None:
        self.release()
