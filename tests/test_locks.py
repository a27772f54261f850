"""Writer locks whose file is unlinked by its holder, and locks kept open between uses.

Real processes contend for real ``flock`` locks. The unlink case: a workflow's
``delete`` removes its lock file while holding it; a writer that opened the old file
before that must not get in beside one that created the new file.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.storeutil import T0, make_workflow, new_store

from claude_state.domain.ops import op_set_data
from claude_state.errors import LockTimeoutError
from claude_state.storage.locks import FileLock

CHILD = str(Path(__file__).parent / "helpers" / "lock_child.py")
ROOT = str(Path(__file__).resolve().parent.parent)


def contender(path: Path, mode: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, CHILD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    # Wait until it has the lock file open (it then blocks in flock on that file).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            links = [
                os.readlink(f"/proc/{proc.pid}/fd/{n}") for n in os.listdir(f"/proc/{proc.pid}/fd")
            ]
        except (FileNotFoundError, ProcessLookupError):
            links = []
        if str(path) in links:
            return proc
        assert proc.poll() is None, "the contender died"
        time.sleep(0.01)
    raise AssertionError("the contender never opened the lock file")


def locked_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    if not ready:
        return False
    assert proc.stdout.readline() == b"locked\n"
    return True


def finish(proc: subprocess.Popen[bytes]) -> None:
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def unlink_under_a_waiter(tmp_path: Path, mode: str) -> bool:
    """A holds the lock and B waits on the same file; A unlinks it, C locks the new
    file, A releases. :returns: whether B got in while C held the lock."""
    path = tmp_path / "wf.lock"
    a = FileLock(str(path))
    a.acquire()
    b = contender(path, mode)
    try:
        os.unlink(path)  # as delete() does: by the holder
        c = FileLock(str(path), timeout=1)
        c.acquire()  # the new file: nobody holds it
        a.release()
        both = locked_within(b, 0.5)
        c.release()
        if not both:
            assert locked_within(b, 10), "the waiter never got the lock after it was free"
        return both
    finally:
        finish(b)


def test_waiter_on_an_unlinked_lock_file_locks_the_new_one(tmp_path: Path) -> None:
    assert unlink_under_a_waiter(tmp_path, "filelock") is False


def test_control_without_the_check_two_writers_get_in(tmp_path: Path) -> None:
    """The same harness with a naive lock (no check that the file still has a name)
    sees two holders at once: the check above is what prevents it."""
    assert unlink_under_a_waiter(tmp_path, "bare") is True


def test_kept_lock_excludes_other_processes_and_reopens_after_delete(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    store.apply("wf1", op_set_data("k", 1, T0))  # the store now keeps wf1's lock open
    lock_path = Path(state.workflow_lock("wf1"))
    # Kept open but released: another process gets it at once.
    other = contender(lock_path, "filelock")
    assert locked_within(other, 10)
    with pytest.raises(LockTimeoutError):  # ...and while it holds it, apply waits
        kept = store._kept_lock("wf1")
        kept.timeout = 0.2
        with store._mutex, kept:
            pass
    kept.timeout = 30.0
    finish(other)
    store.apply("wf1", op_set_data("k", 1, T0))  # kept open again (the timeout closed it)
    # delete (from another store) unlinks the lock file; the kept fd notices and reopens.
    _state2, other_store = new_store(tmp_path)
    other_store.delete("wf1")
    other_store.create(make_workflow("wf1"))
    store.apply("wf1", op_set_data("k", 2, T0))
    held_inode = os.fstat(store._locks["wf1"]._fd).st_ino
    assert held_inode == os.stat(lock_path).st_ino
    assert other_store.load("wf1").data == {"k": 2}


def test_kept_lock_is_reopened_in_a_forked_child(tmp_path: Path) -> None:
    """An flock belongs to the open file, which a forked child shares: the child must
    open its own, or it would get in while its parent holds the lock."""
    path = tmp_path / "x.lock"
    lock = FileLock(str(path), keep_open=True)
    lock.acquire()
    lock.release()
    r, w = os.pipe()
    lock.acquire()  # the parent holds it across the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        lock.timeout = 0.3
        try:
            lock.acquire()
            os.write(w, b"in")
        except LockTimeoutError:
            os.write(w, b"out")
        os._exit(0)
    os.close(w)
    _pid, status = os.waitpid(pid, 0)
    assert os.read(r, 8) == b"out"
    assert os.waitstatus_to_exitcode(status) == 0
    lock.close()


@pytest.mark.parametrize("fast", [True, False])
def test_switches_follow_os_environ(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    """The lock and fsync switches read os.environ's own dict (fast) or os.environ
    (elsewhere); either way they follow changes made while the process runs."""
    from claude_state.storage import layout
    from claude_state.storage.atomic import fsync_enabled
    from claude_state.storage.locks import locking_enabled

    if not fast:
        monkeypatch.setattr(layout, "_ENVIRON_DATA", None)
    monkeypatch.delenv("CLAUDE_STATE_UNSAFE_NO_LOCKS", raising=False)
    monkeypatch.delenv("CLAUDE_STATE_FSYNC", raising=False)
    assert locking_enabled() and fsync_enabled()
    monkeypatch.setenv("CLAUDE_STATE_UNSAFE_NO_LOCKS", "1")
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")
    assert not locking_enabled() and not fsync_enabled()
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "1")
    monkeypatch.delenv("CLAUDE_STATE_UNSAFE_NO_LOCKS")
    assert locking_enabled() and fsync_enabled()
