"""I/O errors at every call site (RELIABILITY §6).

Every ``os`` function the write paths call is made to fail on its Nth call (once, or
from then on) with ENOSPC, EIO, EDQUOT and EROFS, for N = 1, 2, ... until the operation
completes without reaching the Nth call. After each failure:

* a :class:`StorageError` is raised (never a bare ``OSError``, never success after a
  failed flush of the operation's own data);
* a fresh store loads the previous acknowledged state, or the new one only when the
  failure came after the commit point (the snapshot rename of a save/create);
* no partial file is visible and no temp file is left behind;
* once the fault is gone, the same store object carries on correctly.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.storeutil import T0, check_files_decode, make_workflow, temp_files

from claude_state.domain.ops import op_set_data, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.errors import IntegrityError, NotFoundError, StorageError
from claude_state.storage import atomic, wal
from claude_state.storage.layout import StateDir

ERRNOS = [errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS]
FUNCS = ["write", "pwrite", "fsync", "fdatasync", "replace", "open", "link"]
SCENARIOS = ["apply", "apply_compact", "save", "create"]
#: The call sites each operation has (a sweep that hits none of them proves nothing).
USES = {
    "apply": {"pwrite", "fdatasync", "open"},  # the WAL overwrites its zero room
    "apply_compact": set(FUNCS),
    # one durable snapshot write, then its WAL; the old WAL linked as .wal.prev meanwhile
    "save": {"write", "fsync", "replace", "open", "link"},
    "create": {"write", "fsync", "replace", "open"},
}


class Faults:
    """Fails ``os.<name>`` on call *n* (and every later call when *always*)."""

    def __init__(
        self, mp: pytest.MonkeyPatch, name: str, n: int, err: int, always: bool, snapshot: str
    ) -> None:
        self.calls = 0
        self.failed_after_commit = False
        self.injected = False
        self.committed = False  # the snapshot rename of this operation happened
        self.synced = False  # a WAL fdatasync succeeded
        real_replace, real_sync = os.replace, os.fdatasync

        def spy_replace(src: Any, dst: Any, *a: Any, **k: Any) -> None:
            real_replace(src, dst, *a, **k)
            if os.fspath(dst) == snapshot:
                self.committed = True

        def spy_sync(fd: int) -> None:
            real_sync(fd)
            self.synced = True

        mp.setattr(os, "replace", spy_replace)
        mp.setattr(os, "fdatasync", spy_sync)
        real = getattr(os, name)

        def fail(*a: Any, **k: Any) -> Any:
            self.calls += 1
            if self.calls == n or (always and self.calls > n):
                if not self.injected:
                    self.failed_after_commit = self.committed
                    self.failed_after_sync = self.synced
                self.injected = True
                raise OSError(err, os.strerror(err))
            return real(*a, **k)

        mp.setattr(os, name, fail)


def _base(root: Path, scenario: str) -> None:
    state = StateDir(root).ensure()
    store = WorkflowStore(state, compact_bytes=1 << 20)
    store.create(make_workflow("wf1"))
    for i in range(5):
        store.apply("wf1", op_set_data(f"k{i}", "v" * 50, T0))


def _store(root: Path, scenario: str) -> WorkflowStore:
    state = StateDir(root)
    compact = 1 << 20
    if scenario == "apply_compact":
        compact = wal.read(state.workflow_wal("wf1")).valid_end  # the next append compacts
    store = WorkflowStore(state, compact_bytes=compact)
    store.load("wf1")
    return store


def _operation(scenario: str) -> tuple[str, Callable[[WorkflowStore], Any]]:
    if scenario in ("apply", "apply_compact"):
        return "wf1", lambda s: s.apply("wf1", op_step("s0", "running", at=T0))
    if scenario == "save":
        wf = make_workflow("wf1", data={"restored": "yes"})
        return "wf1", lambda s: s.save(wf)
    return "wf2", lambda s: s.create(make_workflow("wf2", data={"new": 1}))


def _load(root: Path, wid: str) -> dict[str, Any] | None:
    try:
        return WorkflowStore(StateDir(root)).load(wid).to_dict()
    except NotFoundError:
        return None


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any, Any]]:
    out = {}
    for sc in SCENARIOS:
        base = tmp_path_factory.mktemp(f"base-{sc}")
        _base(base, sc)
        wid, op = _operation(sc)
        old = _load(base, wid)
        done = tmp_path_factory.mktemp(f"done-{sc}")
        shutil.copytree(base, done, dirs_exist_ok=True)
        op(_store(done, sc))
        out[sc] = (base, old, _load(done, wid))
        assert out[sc][1] != out[sc][2]
    return out


def run_sweep(
    tmp_path: Path, templates: dict[str, Any], scenario: str, func: str, err: int, always: bool
) -> int:
    """Raise N from 1 until the operation completes; returns how many faults it injected."""
    base, old, new = templates[scenario]
    wid, op = _operation(scenario)
    failures = 0
    for n in range(1, 200):
        root = tmp_path / f"{func}-{n}-{always}"
        shutil.copytree(base, root)
        store = _store(root, scenario)
        state = store.state
        with pytest.MonkeyPatch.context() as mp:
            faults = Faults(mp, func, n, err, always, state.workflow_state(wid))
            try:
                op(store)
                raised: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - classified below
                raised = exc
        where = f"{scenario} {func}#{n} {errno.errorcode[err]} always={always}"
        if not faults.injected:
            assert raised is None, where
            assert _load(root, wid) == new, where
            return failures
        failures += 1  # noqa: SIM113 - counts injected runs, not iterations
        got = _load(root, wid)
        if raised is None:
            # only a failure in housekeeping after the op was durable may be absorbed
            assert scenario == "apply_compact" and faults.failed_after_sync, where
            assert got == new, where
        else:
            assert isinstance(raised, StorageError), f"{where}: {raised!r}"
            assert raised.errno == err, where
            want = new if faults.failed_after_commit else old
            assert got == want, f"{where}: state is neither the old nor the committed one"
        assert check_files_decode(state) == [], where
        state.ensure()
        assert temp_files(state) == [], where
        # the fault is gone: the same store object carries on from what is on disk
        if raised is not None and got == old:
            op(store)
            assert _load(root, wid) == new, where
        store.apply(wid, op_set_data("after", 1, T0))
        after = _load(root, wid)
        assert after is not None and after["data"]["after"] == 1, where
        shutil.rmtree(root)
    raise AssertionError("the operation never completed")


@pytest.mark.parametrize("always", [False, True], ids=["once", "always"])
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fault_at_every_call(
    tmp_path: Path, templates: dict[str, Any], scenario: str, func: str, always: bool
) -> None:
    seen = 0
    for err in ERRNOS if func in ("write", "pwrite", "fsync") else ERRNOS[:2]:
        seen += run_sweep(tmp_path / errno.errorcode[err], templates, scenario, func, err, always)
    if func not in USES[scenario]:
        assert seen == 0
    else:
        assert seen > 0, "the sweep never hit this call site: the test would prove nothing"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_short_writes_complete(
    tmp_path: Path, templates: dict[str, Any], scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _old, new = templates[scenario]
    wid, op = _operation(scenario)
    root = tmp_path / "r"
    shutil.copytree(base, root)
    store = _store(root, scenario)
    real, real_p = os.write, os.pwrite
    sizes: list[int] = []

    def short(fd: int, data: Any) -> int:
        sizes.append(len(data))
        return real(fd, bytes(data[: max(1, len(data) // 3)]))

    def short_p(fd: int, data: Any, off: int) -> int:
        sizes.append(len(data))
        return real_p(fd, bytes(data[: max(1, len(data) // 3)]), off)

    monkeypatch.setattr(os, "write", short)
    monkeypatch.setattr(os, "pwrite", short_p)
    op(store)
    monkeypatch.undo()
    assert len(sizes) > 2  # write_all / the WAL's pwrite loop really looped
    assert _load(root, wid) == new
    assert check_files_decode(store.state) == []


def test_short_write_of_zero_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: 0)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError):
            atomic.write_all(fd, b"abc")
        with pytest.raises(OSError):
            wal._pwrite_all(fd, b"abc", 0)
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_enospc_dev_full() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as info:
            atomic.write_all(fd, b"x" * 10000)
        assert info.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_enospc_through_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """atomic_write whose temp file is really /dev/full: StorageError, target intact."""
    target = tmp_path / "target"
    target.write_bytes(b"old")
    (tmp_path / "temp").mkdir()
    real_open = os.open

    def to_full(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if str(path).startswith(str(tmp_path / "temp")):
            return real_open("/dev/full", os.O_WRONLY)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", to_full)
    with pytest.raises(StorageError) as info:
        atomic.atomic_write(str(target), b"new" * 1000, str(tmp_path / "temp"))
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path / "temp") == []


def test_failed_fsync_is_never_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "temp").mkdir()
    target = tmp_path / "t"
    target.write_bytes(b"old")
    calls = []

    def bad_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "EIO")

    monkeypatch.setattr(os, "fsync", bad_fsync)
    with pytest.raises(StorageError):
        atomic.atomic_write(str(target), b"new", str(tmp_path / "temp"))
    assert len(calls) == 1  # not retried
    assert target.read_bytes() == b"old"


# -- controls: the harness catches the bugs it is for -----------------------------------


def _naive_write(path: str, data: bytes, temp_dir: str, mode: int = 0o600) -> None:
    """Overwrite in place: what atomic_write protects against."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        atomic.write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def test_control_in_place_writes_are_caught(
    tmp_path: Path, templates: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import claude_state.domain.store as store_mod

    monkeypatch.setattr(store_mod, "atomic_write", _naive_write)
    # a torn snapshot: the load fails (IntegrityError) or returns neither state
    with pytest.raises((AssertionError, IntegrityError)):
        run_sweep(tmp_path, templates, "save", "write", errno.ENOSPC, False)


def test_control_unacknowledged_wal_records_are_caught(
    tmp_path: Path, templates: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the cut after a failed flush, a failed append would become visible."""
    monkeypatch.setattr(os, "ftruncate", lambda fd, n: None)
    with pytest.raises(AssertionError, match="neither the old"):
        run_sweep(tmp_path, templates, "apply", "fdatasync", errno.EIO, False)
