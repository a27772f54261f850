"""I/O errors at every call site of the journal and lease write paths.

The sweep of ``tests/test_atomic_faults.py`` (workflow store) extended to the session
journal (the hook's append, and the first event that creates the journal) and to the
lease (acquire, heartbeat, release): every ``os`` call those paths make fails on its
Nth call, once or from then on, with ENOSPC or EIO, for N = 1, 2, ... until the
operation completes without reaching it. After each fault:

* the error is a :class:`ClaudeStateError` (a ``StorageError``), never a bare OSError;
* nothing acknowledged is lost: the journal holds every record appended before, and
  the lease is the previous one or (only once the operation returned, or its rename
  committed) the new one;
* nothing half-written is read as data: the journal reads exactly the old records (an
  append that failed is never visible, even when its bytes reached the file), and the
  lease file always verifies;
* with the fault gone, the next append numbers its records above every number used
  before, and the next lease operation succeeds.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claude_state.domain import leases
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.errors import ClaudeStateError
from claude_state.storage import journal, wal
from claude_state.storage.layout import StateDir

SID = "sess-1"
ERRNOS = [errno.ENOSPC, errno.EIO]
FUNCS = ["open", "write", "pwrite", "fsync", "fdatasync", "ftruncate", "replace", "mkdir"]
OLD = [journal.wrap(b'{"hook_event_name":"PreToolUse","n":%d}' % i, 1.0) for i in range(3)]
NEW = [journal.wrap(b'{"hook_event_name":"PostToolUse","n":%d}' % i, 2.0) for i in range(2)]


class Faults:
    """Fails ``os.<name>`` on call *n* (and every later call when *always*)."""

    def __init__(self, mp: pytest.MonkeyPatch, name: str, n: int, err: int, always: bool):
        self.calls = 0
        self.injected = False
        real = getattr(os, name)

        def fail(*a: Any, **k: Any) -> Any:
            self.calls += 1
            if self.calls == n or (always and self.calls > n):
                self.injected = True
                raise OSError(err, os.strerror(err))
            return real(*a, **k)

        mp.setattr(os, name, fail)


def _records(state: StateDir) -> list[tuple[int, bytes]]:
    return journal.read(state, SID)


def _owner() -> ProcessIdentity:
    return ProcessIdentity.current()


# -- scenarios: (prepare the base state, the operation, check after a fault) ------------


def _base_journal(root: Path) -> None:
    state = StateDir(root).ensure()
    journal.append(state, SID, OLD)


def _base_first(root: Path) -> None:
    root.mkdir(parents=True)  # the project's .claude/state, nothing in it yet


def _base_empty(root: Path) -> None:
    StateDir(root).ensure()


def _base_lease(root: Path) -> None:
    state = StateDir(root).ensure()
    leases.acquire(state, SID, _owner())


def _check_journal(state: StateDir, raised: bool, before: list[tuple[int, bytes]]) -> None:
    got = _records(state)
    if raised:
        assert got == before  # nothing unacknowledged readable, nothing old lost
    else:
        assert got[: len(before)] == before and [p for _s, p in got[len(before) :]] == NEW
    # The fault gone: the next append goes on above every number used so far.
    used = max([s for s, _p in got], default=0)
    seqs = journal.append(state, SID, NEW)
    assert seqs[0] > used and seqs == list(range(seqs[0], seqs[0] + len(NEW)))
    assert _records(state)[: len(got)] == got


def _check_lease(state: StateDir, raised: bool, before: Any, after_ok: Callable[[Any], bool]):  # type: ignore[no-untyped-def]
    rec = leases.read(state, SID)  # raises if the file does not verify
    if raised:
        assert rec == before or after_ok(rec)  # old, or new once its rename committed
    else:
        assert after_ok(rec)


SCENARIOS: dict[str, tuple[Callable[[Path], None], Callable[[StateDir], Any]]] = {
    "journal_append": (_base_journal, lambda s: journal.append(s, SID, NEW)),
    "journal_first": (_base_first, lambda s: journal.append(s, SID, NEW)),
    "lease_acquire": (_base_empty, lambda s: leases.acquire(s, SID, _owner())),
    "lease_heartbeat": (_base_lease, lambda s: leases.heartbeat(s, SID, 1, now=1e10)),
    "lease_release": (_base_lease, lambda s: leases.release(s, SID, 1)),
}


def _lease_after(name: str) -> Callable[[Any], bool]:
    if name == "lease_acquire":
        return lambda r: r is not None and not r.released and r.epoch == 1
    if name == "lease_heartbeat":
        return lambda r: r is not None and r.info.heartbeat_at == 1e10
    return lambda r: r is not None and r.released


def _sweep(tmp: Path, name: str, func: str, err: int, always: bool) -> int:
    prepare, op = SCENARIOS[name]
    base = tmp / "base"
    prepare(base)
    injected = 0
    for n in range(1, 100):
        root = tmp / f"r{n}"
        if base.exists():
            shutil.copytree(base, root)
        else:  # pragma: no cover - every base creates its folder
            root.mkdir()
        state = StateDir(root)
        before_j = _records(state)
        before_l = leases.read(state, SID) if (root / "sessions").exists() else None
        with pytest.MonkeyPatch.context() as mp:
            faults = Faults(mp, func, n, err, always)
            try:
                op(state)
                raised: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - classified below
                raised = exc
        where = f"{name} {func}#{n} {errno.errorcode[err]} always={always}"
        if raised is not None:
            assert isinstance(raised, ClaudeStateError), f"{where}: {raised!r}"
        if name.startswith("journal"):
            _check_journal(state, raised is not None, before_j)
        else:
            _check_lease(state, raised is not None, before_l, _lease_after(name))
            if raised is not None:  # the fault gone, the operation succeeds
                op(state)
                assert _lease_after(name)(leases.read(state, SID)), where
        assert not os.listdir(root / "temp") or all(
            f.split(".")[0] == str(os.getpid()) for f in os.listdir(root / "temp")
        ), where
        shutil.rmtree(root)
        if not faults.injected:
            return injected
        injected += 1  # noqa: SIM113 - counts injected runs, not iterations
    raise AssertionError(f"{name} {func}: never completed")


@pytest.mark.parametrize("always", [False, True], ids=["once", "always"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_at_every_call(tmp_path: Path, name: str, always: bool) -> None:
    hit = set()
    for func in FUNCS:
        for err in ERRNOS:
            if _sweep(tmp_path / f"{func}-{err}", name, func, err, always):
                hit.add(func)
    # the sweep reached the calls that matter, or it would prove nothing
    want = {"open", "fdatasync" if name.startswith("journal") else "fsync"}
    want |= {"pwrite"} if name.startswith("journal") else {"write", "replace"}
    assert want <= hit, hit


def test_control_an_unstaged_failed_flush_would_be_read_as_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut after a failed flush is what keeps unacknowledged records unread: without
    it, records whose flush failed are read back as data (the harness sees it)."""
    _base_journal(tmp_path / "s")
    state = StateDir(tmp_path / "s")
    monkeypatch.setattr(wal, "unstage_fd", lambda fd, end: None)
    with pytest.MonkeyPatch.context() as mp:
        Faults(mp, "fdatasync", 1, errno.EIO, False)
        with pytest.raises(ClaudeStateError):
            journal.append(state, SID, NEW)
    assert len(_records(state)) == len(OLD) + len(NEW)  # never acknowledged, yet read
