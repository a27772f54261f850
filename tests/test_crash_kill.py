"""Kill -9 at random points (RELIABILITY §1), with real processes.

A child (``helpers/crash_child.py``) loops over durable operations and prints ``ack N``
after each; the parent SIGKILLs it after a random delay and checks that every file
verifies, that the state holds at least the last acknowledged operation (and at most the
one in flight), that orphaned temp files are swept, and that loading twice gives the
same state. The next child starts on the same directory, so every start is itself a
recovery (a torn WAL tail is cut by its first append) and is killed in turn.

``CLAUDE_STATE_KILLS`` sets the number of kills per mode (default 70, and 120 for
``apply``, whose loop appends and compacts: 260 in all; with the 40 kills during
checkpoint restores in ``test_checkpoints.py``, 230 of them hit workflow writes).
The negative control acknowledges before writing and must be caught.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.storeutil import check_files_decode, make_workflow, temp_files

from claude_state.domain.store import WorkflowStore
from claude_state.storage import journal, wal
from claude_state.storage.layout import StateDir

CHILD = str(Path(__file__).parent / "helpers" / "crash_child.py")
ROOT = str(Path(__file__).resolve().parent.parent)
_KILLS = os.environ.get("CLAUDE_STATE_KILLS")
_DEFAULT_KILLS = {"apply": 120, "save": 70, "journal": 70}
KILLS = {m: int(_KILLS) if _KILLS else n for m, n in _DEFAULT_KILLS.items()}


@dataclass
class Report:
    kills: int = 0
    acks: int = 0
    lost: list[str] = field(default_factory=list)
    swept: int = 0
    torn_tails: int = 0


def durable_value(mode: str, state: StateDir) -> int:
    if mode == "journal":
        recs = journal.read(state, "sess1")
        seqs = [s for s, _ in recs]
        # Increasing, never reused; a jump record after a cut torn tail may skip some.
        assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), seqs
        if not recs:
            return 0
        values = [int(p.split(b'"i":')[1].split(b",")[0]) for _, p in recs]
        assert values == sorted(set(values)), "an event recorded twice or out of order"
        return values[-1]
    a = WorkflowStore(state).load("wf1")
    b = WorkflowStore(state).load("wf1")
    assert a.to_dict() == b.to_dict(), "two recoveries disagree"
    return int(a.data.get("n", 0))


def torn(mode: str, state: StateDir) -> bool:
    path = state.session_wal("sess1") if mode == "journal" else state.workflow_wal("wf1")
    try:
        return wal.read(path).torn
    except FileNotFoundError:
        return False


def run_kills(
    root: Path,
    mode: str,
    kills: int,
    *,
    early_ack: bool = False,
    stop_on_loss: bool = False,
    seed: int = 0,
) -> Report:
    state = StateDir(root).ensure()
    if mode != "journal" and not WorkflowStore(state).exists("wf1"):
        WorkflowStore(state).create(make_workflow("wf1"))
    env = {**os.environ, "PYTHONPATH": ROOT, "COMPACT_BYTES": "3000"}
    if early_ack:
        env["CRASH_CHILD_EARLY_ACK"] = "1"
    rng = random.Random(seed)
    rep = Report()
    last_ack = durable_value(mode, state)
    for k in range(kills):
        proc = subprocess.Popen(
            [sys.executable, CHILD, mode, str(root)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", f"child failed to start (kill {k})"
        first = b""
        if rng.random() < 0.75:
            # Most kills land after the child's first acknowledged write, so a loaded
            # machine (slow start-ups) still kills it mid-work; the rest may land during
            # the start itself, which is a recovery of the previous kill's state.
            first = proc.stdout.readline()
        time.sleep(rng.uniform(0.005, 0.060))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        out = first + out
        assert proc.returncode == -signal.SIGKILL, "the child died on its own"
        acks = [
            int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("ack ")
        ]
        rep.kills += 1
        rep.acks += len(acks)
        if acks:
            assert acks == list(range(last_ack + 1, last_ack + 1 + len(acks)))
            last_ack = acks[-1]
        problems = check_files_decode(state)
        assert problems == [], f"kill {k}: damaged files {problems}"
        rep.torn_tails += torn(mode, state)
        value = durable_value(mode, state)
        if value < last_ack:
            rep.lost.append(f"kill {k}: acknowledged {last_ack}, durable {value}")
            if stop_on_loss:
                return rep
        assert value <= last_ack + 1, f"kill {k}: {value} was never attempted"
        last_ack = max(last_ack, value)  # the op in flight may have landed
        before = len(temp_files(state))
        state.ensure()  # the sweep on open
        rep.swept += before
        assert temp_files(state) == [], f"kill {k}: temp files survived the sweep"
    return rep


@pytest.mark.parametrize("mode", ["apply", "save", "journal"])
def test_kill9_loses_no_acknowledged_update(tmp_path: Path, mode: str) -> None:
    rep = run_kills(tmp_path, mode, KILLS[mode], seed=zlib.crc32(mode.encode()))
    print(
        f"{mode}: {rep.kills} kills, {rep.acks} acks, {rep.swept} temp files swept, "
        f"{rep.torn_tails} torn WAL tails"
    )
    assert rep.lost == []
    assert rep.acks > rep.kills  # the loop really did durable work between kills


def test_control_early_ack_is_caught(tmp_path: Path) -> None:
    """Acknowledging before the write loses acknowledged updates: the harness sees it."""
    rep = run_kills(tmp_path, "apply", 60, early_ack=True, stop_on_loss=True, seed=7)
    assert rep.lost, f"the harness missed every early acknowledgement in {rep.kills} kills"


def test_control_early_ack_journal_is_caught(tmp_path: Path) -> None:
    rep = run_kills(tmp_path, "journal", 60, early_ack=True, stop_on_loss=True, seed=8)
    assert rep.lost
