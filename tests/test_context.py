"""The SessionStart additionalContext text: facts, and never over 10,000 characters."""

from __future__ import annotations

from claude_state.adapters.claude_code.context import MAX_CHARS, build_context


def _plan(i: int, *, prompt_len: int = 100, n_wf: int = 1) -> dict:
    return {
        "session_id": f"sess-{i:05d}-aaaaaaaa-bbbb-cccc-dddd",
        "strategy": "resume_from_wal",
        "estimated_data_loss": "none of the 12 acknowledged events",
        "recoverable_workflows": [
            {
                "id": f"wf-{i}-{j}",
                "name": "Release",
                "status": "running",
                "progress": 33.3,
                "step_in_flight": "build",
                "steps_in_flight": ["build"],
                "owned": True,
                "last_checkpoint": {"id": "cp1", "created_at": "2026-01-01T00:00:00.000Z"},
            }
            for j in range(n_wf)
        ],
        "last_activity": {
            "at": f"2026-01-01T00:{i % 60:02d}:00.000Z",
            "last_prompt": "p" * prompt_len,
            "last_tool_calls": [{"tool_name": "Bash", "summary": "make", "status": "ok"}],
        },
        "in_flight_tool_calls": [
            {"tool_name": "Bash", "summary": "make upload", "status": "pending"}
        ],
    }


def test_nothing_to_say_is_empty() -> None:
    assert build_context([]) == ""


def test_one_crash_names_everything() -> None:
    text = build_context([_plan(1)])
    for needle in (
        "sess-00001",
        "wf-1-0",
        "33.3% done",
        "step in flight: build",
        "Last prompt",
        "make upload",
        "claude-state recover sess-00001",
    ):
        assert needle in text


def test_many_crashes_fit_and_name_every_id_that_fits() -> None:
    plans = [_plan(i, prompt_len=2000, n_wf=3) for i in range(60)]
    text = build_context(plans)
    assert len(text) <= MAX_CHARS
    assert all(p["session_id"] in text for p in plans)  # 60 ids fit in the tail list


def test_truncation_at_10000_with_thousands_of_sessions() -> None:
    plans = [_plan(i, prompt_len=5000, n_wf=5) for i in range(2000)]
    text = build_context(plans)
    assert len(text) <= MAX_CHARS
    assert "more (`claude-state sessions list --crashed`)" in text
    assert "claude-state recover" in text


def test_resume_section_and_hard_limit() -> None:
    wf = [
        {"id": f"w{i}", "name": "x" * 500, "status": "paused", "progress": 10, "next_step": "s"}
        for i in range(100)
    ]
    text = build_context([], session_id="me", source="resume", unfinished=wf)
    assert len(text) <= MAX_CHARS and text.startswith("This session (me, resume)")
    small = build_context([], session_id="me", source="compact", unfinished=wf[:1])
    assert "w0" in small and "next step: s" in small
