"""Session records folded from the journal: apply_event, catch-up, status, summaries."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import pytest
from _session_helpers import SID, append, ev, kill9, start_agent, write_lease

from claude_state.domain import leases
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.domain.sessions import (
    MAX_LAST_TOOL_CALLS,
    SessionRecord,
    SessionStore,
    apply_event,
    summarize_input,
)
from claude_state.errors import FrameError, InvalidIdError, NotFoundError
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

FIXTURES = "/work/shared/fixtures/claude-code"


@pytest.fixture
def state(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> StateDir:
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")
    return StateDir(str(tmp_path / "state")).ensure()


def fixture_events() -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def test_fixture_session_folds_into_a_record(state: StateDir) -> None:
    events = fixture_events()
    if not events:
        pytest.skip("fixtures not available")
    sid = events[0]["session_id"]
    for i, e in enumerate(events):
        append(state, sid, e, t=1000.0 + i)
    store = SessionStore(state)
    rec = store.catch_up(sid)
    assert rec.events == len(events)
    assert rec.applied_seq == len(events)
    assert rec.status == "ended" and rec.end_reason == "prompt_input_exit"
    assert rec.model == "claude-sonnet-5"
    assert rec.cwd == "/home/dev/shop"
    assert rec.tool_calls == 3
    assert rec.in_flight == {}
    assert rec.last_prompt
    assert all(c["status"] == "ok" for c in rec.last_tool_calls)
    assert rec.compactions == 1
    assert rec.subagents and rec.subagents[0]["agent_id"] == "a1b2c3"
    assert rec.started_at == 1000.0 and rec.last_activity == 1000.0 + len(events) - 1
    # a second catch-up applies nothing: every event is folded in exactly once
    again = store.catch_up(sid)
    assert again.events == rec.events and again.revision == rec.revision
    assert store.status(sid) == "ended"


def test_apply_event_is_pure_and_bounded() -> None:
    rec = SessionRecord(id="s1")
    for i in range(30):
        apply_event(
            rec,
            i + 1,
            float(i),
            {
                "hook_event_name": "PreToolUse",
                "tool_name": "Bash",
                "tool_input": {"command": f"echo {i}"},
                "tool_use_id": f"t{i}",
            },
        )
    assert len(rec.last_tool_calls) == MAX_LAST_TOOL_CALLS
    assert len(rec.in_flight) == 30
    apply_event(
        rec,
        31,
        31.0,
        {
            "hook_event_name": "PostToolUseFailure",
            "tool_name": "Bash",
            "tool_use_id": "t29",
            "error": "Exit code 1",
        },
    )
    assert "t29" not in rec.in_flight
    assert rec.last_tool_calls[-1]["status"] == "failed"
    assert rec.failed_tool_calls == 1 and rec.tool_calls == 1
    # the same completion journaled twice (a retried hook) counts once
    apply_event(rec, 31, 31.0, {"hook_event_name": "PostToolUseFailure", "tool_use_id": "t29"})
    assert rec.failed_tool_calls == 1 and rec.tool_calls == 1 and rec.events == 32
    # a resume in a new process interrupts the dead process's calls
    apply_event(rec, 32, 32.0, {"hook_event_name": "SessionStart", "source": "resume"})
    assert rec.in_flight == {} and rec.resumes == 1
    assert rec.last_tool_calls[-2]["status"] == "interrupted"
    d = rec.to_dict()
    assert SessionRecord.from_dict(d).to_dict() == d


def test_resume_after_end_reactivates(state: StateDir) -> None:
    append(state, SID, ev("SessionStart", source="startup"), ev("SessionEnd", reason="clear"))
    store = SessionStore(state)
    assert store.status(SID) == "ended"
    append(state, SID, ev("SessionStart", source="resume"))
    assert store.status(SID) == "active"
    assert store.peek(SID).resumes == 1


def test_bad_json_is_logged_and_skipped(state: StateDir) -> None:
    journal.append(
        state, SID, [journal.wrap(b"{not json"), journal.wrap(b'{"hook_event_name":"Stop"}')]
    )
    rec = SessionStore(state).catch_up(SID)
    assert rec.events == 1 and rec.applied_seq == 2
    with open(os.path.join(state.logs, "hook.log")) as f:
        assert "journal record 1" in f.read()


def test_peek_counts_journal_events_without_writing(state: StateDir) -> None:
    store = SessionStore(state)
    append(state, SID, ev("SessionStart", source="startup"))
    store.catch_up(SID)
    append(state, SID, ev("UserPromptSubmit", prompt="hi"), ev("Stop"))
    peeked = store.peek(SID)
    assert peeked.events == 3 and peeked.last_prompt == "hi"
    assert store.load(SID).events == 1  # nothing written
    assert store.summary(SID, detail=True)["events"] == 3


def test_on_event_callback_sees_every_event_in_order(state: StateDir) -> None:
    append(state, SID, ev("SessionStart", source="startup"), ev("UserPromptSubmit", prompt="a"))
    seen: list[tuple[int, str]] = []
    SessionStore(state).catch_up(SID, lambda seq, t, e, r: seen.append((seq, e["hook_event_name"])))
    assert seen == [(1, "SessionStart"), (2, "UserPromptSubmit")]


def test_failed_callback_saves_nothing(state: StateDir) -> None:
    append(state, SID, ev("SessionStart", source="startup"))
    store = SessionStore(state)

    def boom(*a: Any) -> None:
        raise RuntimeError("plugin failed")

    with pytest.raises(RuntimeError):
        store.catch_up(SID, boom)
    assert store.load(SID).applied_seq == 0
    assert store.catch_up(SID).applied_seq == 1


def test_load_unknown_and_invalid_ids(state: StateDir) -> None:
    store = SessionStore(state)
    with pytest.raises(NotFoundError):
        store.load("nope")
    with pytest.raises(InvalidIdError):
        store.load("../etc")
    assert store.ids() == []


def test_damaged_record_is_reported(state: StateDir) -> None:
    append(state, SID, ev("SessionStart", source="startup"))
    store = SessionStore(state)
    store.catch_up(SID)
    path = state.session_record(SID)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[-1] ^= 1
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(FrameError):
        store.load(SID)
    assert store.list() == []  # skipped, not misread


def test_summary_keys_match_the_contract(state: StateDir) -> None:
    store = SessionStore(state)
    store.start(SID, ProcessIdentity.current(), pid_source="test")
    store.note_workflow(SID, "wf-1", "build")
    s = store.summary(SID)
    assert set(s) == {"id", "status", "pid", "host", "started_at", "last_activity", "workflows"}
    assert s["status"] == "active" and s["pid"] == os.getpid() and s["workflows"] == ["wf-1"]
    show = store.summary(SID, detail=True)
    assert {"events", "tool_calls"} <= set(show)


def test_end_releases_the_lease(state: StateDir) -> None:
    store = SessionStore(state)
    store.start(SID, ProcessIdentity.current())
    rec = store.end(SID, "logout")
    assert rec.status == "ended" and rec.end_reason == "logout"
    lease = leases.read(state, SID)
    assert lease is not None and lease.released and lease.reason == "ended"
    assert store.status(SID) == "ended"


def test_killed_agent_reads_as_crashed_live_one_as_active(state: StateDir) -> None:
    store = SessionStore(state)
    live = start_agent(state, "live-1")
    dead = start_agent(state, "dead-1")
    try:
        kill9(dead)
        assert store.status("live-1") == "active"
        assert store.status("dead-1") == "crashed"
        rec = store.peek("dead-1")
        assert rec.last_prompt == "add retries to the payment client"
        assert [c["tool_use_id"] for c in rec.in_flight.values()] == ["toolu_2"]
    finally:
        kill9(live)


def test_ended_session_with_stale_lease_is_not_crashed(state: StateDir) -> None:
    # SessionEnd reached the journal, then the agent died before releasing the lease.
    append(state, SID, ev("SessionStart", source="startup"), ev("SessionEnd", reason="exit"))
    write_lease(
        state,
        SID,
        pid=2**22 - 3,
        start_time="ticks:1",
        boot_id="x",
        host=ProcessIdentity.current().host,
    )
    assert SessionStore(state).status(SID) == "ended"


def test_summarize_input() -> None:
    assert summarize_input("Bash", {"command": "ls   -la\n x"}) == "ls -la x"
    assert summarize_input("Read", {"file_path": "/a/b"}) == "/a/b"
    assert len(summarize_input("X", {"k": "v" * 1000})) <= 160
    assert summarize_input("X", None) == ""
