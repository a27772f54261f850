"""Sequence numbers are never reused after a damaged journal tail is cut.

A session record folds every verified journal record. If the journal's tail is damaged
after that (a bit flip, a truncation), the next writer cuts it; numbering new events
from the cut would give them sequence numbers the record already applied, so they would
never be applied or delivered to plugins.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hookutil import SID, event, hook_env, run_hook, state_root

from claude_state.domain.sessions import SessionStore
from claude_state.domain.verify import verify
from claude_state.storage import journal, wal
from claude_state.storage.layout import StateDir


def _tool(i: int, name: str = "PostToolUse") -> bytes:
    return event(
        name,
        tool_name="Bash",
        tool_use_id=f"tu{i}",
        tool_input={"command": f"echo {i}"},
        tool_response={"stdout": str(i)},
    )


def _setup(tmp: Path) -> tuple[dict[str, str], StateDir, Path]:
    trace = tmp / "trace.txt"
    env = hook_env(tmp, CLAUDE_STATE_TRACE=str(trace))
    assert run_hook(event("SessionStart", source="startup"), env).returncode == 0
    for i in (1, 2):
        assert run_hook(_tool(i), env).returncode == 0
    # A cold event drains the journal: the record applies 1..4, plugins get them.
    assert run_hook(event("Stop", stop_hook_active=False), env).returncode == 0
    state = StateDir(state_root(tmp))
    assert SessionStore(state).load(SID).applied_seq == 4
    return env, state, trace


def _tear(state: StateDir, n: int = 7) -> None:
    path = state.session_wal(SID)
    os.truncate(path, os.path.getsize(path) - n)  # record 4 (applied) is now torn
    assert wal.read(path).torn


def _delivered(trace: Path) -> int:
    return sum("hook_event(" in ln for ln in trace.read_text().splitlines())


def test_new_events_after_a_torn_applied_tail_are_applied_and_delivered(tmp_path: Path) -> None:
    env, state, trace = _setup(tmp_path)
    before = _delivered(trace)
    _tear(state)
    report = verify(state)
    assert [p["kind"] for p in report.problems] == ["journal_behind"]
    for i in (3, 4):
        assert run_hook(_tool(i), env).returncode == 0
    assert run_hook(event("Stop", stop_hook_active=False), env).returncode == 0
    seqs = [s for s, _ in journal.read(state, SID)]
    assert seqs[:3] == [1, 2, 3] and min(seqs[3:]) > 4, seqs  # never a reused number
    rec = SessionStore(state).load(SID)
    assert rec.applied_seq == seqs[-1]
    assert rec.tool_calls == 4  # tu1, tu2, tu3, tu4: the new ones are applied
    assert _delivered(trace) - before == 3  # and delivered to plugins
    assert verify(state).ok


def test_control_reusing_numbers_loses_the_new_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer as it was (cut, then number from the cut) loses what follows."""
    _env, state, _trace = _setup(tmp_path)
    _tear(state)

    def old_cut(fd: int, header: wal.WALHeader, result: wal.WALRead, buf: bytes):  # type: ignore[no-untyped-def]
        os.ftruncate(fd, result.valid_end)
        return header, result.next_seq, result.valid_end

    monkeypatch.setattr(wal, "_cut", old_cut)
    journal.append(state, SID, [journal.wrap(_tool(3).strip())])
    monkeypatch.undo()
    rec = SessionStore(state).catch_up(SID)
    assert rec.tool_calls == 2  # tu3 was numbered 4, which the record had applied: lost


def test_a_journal_truncated_at_a_record_boundary_is_named_and_repaired(tmp_path: Path) -> None:
    """No torn bytes are left to say records were there: verify compares the journal's
    end with the session record's cursor, and repair makes numbering resume above it."""
    env, state, _trace = _setup(tmp_path)
    path = state.session_wal(SID)
    r = wal.read(path)
    keep = r.size - (wal.REC_OVERHEAD + len(r.records[-1][1]))
    os.truncate(path, keep)  # record 4 gone whole
    assert not wal.read(path).torn
    report = verify(state)
    assert [p["kind"] for p in report.problems] == ["journal_behind"]
    fixed = verify(state, repair=True)
    assert fixed.ok and fixed.repaired
    assert run_hook(_tool(3), env).returncode == 0
    assert run_hook(event("Stop", stop_hook_active=False), env).returncode == 0
    assert SessionStore(state).load(SID).tool_calls == 3


def test_a_deleted_journal_is_named_and_new_events_still_applied(tmp_path: Path) -> None:
    env, state, trace = _setup(tmp_path)
    before = _delivered(trace)
    os.unlink(state.session_wal(SID))
    report = verify(state)
    assert [p["kind"] for p in report.problems] == ["journal_missing"]
    assert run_hook(_tool(3), env).returncode == 0  # a hot event recreates the journal
    assert [s for s, _ in journal.read(state, SID)] == [5]  # numbered above the cursor
    assert run_hook(event("Stop", stop_hook_active=False), env).returncode == 0
    assert SessionStore(state).load(SID).tool_calls == 3
    assert _delivered(trace) - before == 2


def test_the_jump_record_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "format.md").read_text()
    assert wal.JUMP == 0x80000000 and "`0x80000000` marks a jump record" in doc
    assert "journal_behind" in doc and "stale_wal" in doc and "foreign_fifo" in doc
