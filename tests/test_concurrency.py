"""Concurrency (RELIABILITY §4): real processes, and the lock switched off as a control."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.storeutil import T0, make_workflow, new_store

from claude_state.domain.ops import op_set_data
from claude_state.domain.store import WorkflowStore
from claude_state.errors import LockTimeoutError
from claude_state.storage.layout import StateDir

CHILD = str(Path(__file__).parent / "helpers" / "conc_child.py")
ROOT = str(Path(__file__).resolve().parent.parent)
N, M = 4, 50


def spawn(
    mode: str, root: Path, count: int = 0, *, unsafe: bool = False, **env: str
) -> subprocess.Popen[bytes]:
    e = {**os.environ, "PYTHONPATH": ROOT, **env}
    if unsafe:
        e["CLAUDE_STATE_UNSAFE_NO_LOCKS"] = "1"
    else:
        e.pop("CLAUDE_STATE_UNSAFE_NO_LOCKS", None)
    return subprocess.Popen(
        [sys.executable, CHILD, mode, str(root), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=e,
    )


def run_increments(root: Path, *, unsafe: bool) -> int:
    state, store = new_store(root)
    store.create(make_workflow("wf1", data={"n": 0}))
    procs = [spawn("incr", root, M, unsafe=unsafe) for _ in range(N)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0 or unsafe, err.decode()
    return int(WorkflowStore(state).load("wf1").data["n"])


def test_no_lost_updates(tmp_path: Path) -> None:
    assert run_increments(tmp_path, unsafe=False) == N * M


def test_control_lost_updates_without_the_lock(tmp_path: Path) -> None:
    """With locks off the same harness must see the failure: lost increments, or
    writers racing on the WAL so badly that the log no longer verifies (either is
    exactly what the lock prevents)."""
    from claude_state.errors import IntegrityError

    for attempt in range(3):
        try:
            n = run_increments(tmp_path / str(attempt), unsafe=True)
        except IntegrityError:
            return  # damage detected (e.g. a sequence gap from colliding appends)
        if n < N * M:
            return
    pytest.fail("with locks off the harness found no lost update: it proves nothing")


def run_keys(root: Path, *, unsafe: bool, count: int = M) -> tuple[int, list[str]]:
    state, store = new_store(root)
    store.create(make_workflow("wf1"))
    procs = [spawn("keys", root, count, unsafe=unsafe, COMPACT_BYTES="3000") for _ in range(N)]
    errors = []
    for p in procs:
        _out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            errors.append(err.decode().strip().splitlines()[-1])
    try:
        keys = len(WorkflowStore(state).load("wf1").data)
    except Exception as exc:  # noqa: BLE001 - the unsafe control may damage the files
        errors.append(repr(exc))
        keys = -1
    return keys, errors


def test_concurrent_appends_and_compactions(tmp_path: Path) -> None:
    keys, errors = run_keys(tmp_path, unsafe=False)
    assert errors == []
    assert keys == N * M


def test_control_concurrent_appends_without_the_lock(tmp_path: Path) -> None:
    for attempt in range(3):
        keys, errors = run_keys(tmp_path / str(attempt), unsafe=True)
        if keys != N * M or errors:
            return
    pytest.fail("with locks off no append was lost or damaged: the harness proves nothing")


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    readers = [spawn("reader", tmp_path) for _ in range(2)]
    writers = [spawn("keys", tmp_path, 80, COMPACT_BYTES="2500") for _ in range(2)]
    results = [w.communicate(timeout=120) for w in writers]
    (tmp_path / "STOP").touch()
    results += [r.communicate(timeout=60) for r in readers]
    for p, (_out, err) in zip(writers + readers, results, strict=True):
        assert p.returncode == 0, err.decode()
    for out, _err in results[2:]:
        assert int(out.split()[1]) > 10  # the readers really overlapped the writers
    assert len(WorkflowStore(state).load("wf1").data) == 160


def test_lock_holder_killed(tmp_path: Path) -> None:
    state, store = new_store(tmp_path)
    store.create(make_workflow("wf1"))
    holder = spawn("hold", tmp_path)
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"locked\n"
    # control: while the holder lives, the lock really is held
    with pytest.raises(LockTimeoutError), store.lock("wf1", timeout=0.2):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    t0 = time.monotonic()
    store.apply("wf1", op_set_data("after", 1, T0))
    assert time.monotonic() - t0 < 1.0
    assert WorkflowStore(StateDir(tmp_path)).load("wf1").data == {"after": 1}
