"""A lock contender for tests/test_locks.py: ``lock_child.py PATH MODE``.

Takes the lock at PATH, prints ``locked``, and holds it until its stdin closes. MODE
``filelock`` uses :class:`FileLock`; ``bare`` is the naive ``open`` + ``flock`` without
the check that the locked file still has a name (the negative control).
"""

from __future__ import annotations

import fcntl
import os
import sys

from claude_state.storage.locks import FileLock

path, mode = sys.argv[1], sys.argv[2]
if mode == "filelock":
    lock = FileLock(path, timeout=None)
    lock.acquire()
else:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
