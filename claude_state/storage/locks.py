"""Writer locks: ``flock`` on a per-subject lock file that is never replaced.

Writers lock for read-modify-write and appends (Claude Code runs ``PostToolUse`` hooks
in parallel). Readers never lock: snapshots appear by rename and a half-written WAL tail
fails its checksum. The kernel drops an ``flock`` when its holder dies, so a writer
killed with -9 never blocks the next one.

``CLAUDE_STATE_UNSAFE_NO_LOCKS=1`` disables locking. It exists only so the concurrency
tests can show that they do detect lost updates when the lock is off.

Hot path module: stdlib only.
"""

from __future__ import annotations

import fcntl
import os
import time

from claude_state.errors import LockTimeoutError, StorageError
from claude_state.storage.layout import FILE_MODE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing-only: keep the hot path's imports minimal
    from types import TracebackType


def locking_enabled() -> bool:
    return os.environ.get("CLAUDE_STATE_UNSAFE_NO_LOCKS") != "1"


class FileLock:
    """An exclusive ``flock`` on *path*, usable as a context manager.

    :param timeout: seconds to wait; ``None`` waits forever.
    """

    __slots__ = ("path", "timeout", "_fd")

    def __init__(self, path: str, timeout: float | None = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = -1

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise StorageError(
                f"could not open lock {self.path}: {exc.strerror}", self.path, exc.errno
            ) from exc
        if not locking_enabled():
            self._fd = fd
            return
        try:
            if self.timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._acquire_polling(fd, self.timeout)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _acquire_polling(self, fd: int, timeout: float) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            time.sleep(delay)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(self.path, timeout) from None
                delay = min(delay * 2, 0.02)

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
