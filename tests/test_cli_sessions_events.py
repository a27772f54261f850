"""``claude-state sessions events SID``: every recorded hook event, in journal order.

The events are fed through the real hook command (one process per event, as Claude Code
runs it) from the recorded Claude Code fixtures, then read back through the real CLI.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hookutil import SID, fixtures, hook_env, run_hook, state_root

from claude_state.domain.sessions import SessionStore
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_state", "--state-dir", str(state_root(project)), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=hook_env(project),
    )


def expected_rows() -> list[dict[str, Any]]:
    """What the fixtures fired, in order: the reference the CLI must reproduce."""
    out = []
    for _name, data in fixtures():
        ev = json.loads(data)
        out.append(
            {
                "event": ev["hook_event_name"],
                "tool_name": ev.get("tool_name"),
                "tool_use_id": ev.get("tool_use_id"),
            }
        )
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("events")
    env = hook_env(tmp)
    for name, data in fixtures():
        p = run_hook(data, env)
        assert p.returncode == 0, (name, p.stderr)
    return tmp


def test_every_event_in_journal_order(project: Path) -> None:
    p = cli(project, "--json", "sessions", "events", SID)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [set(r) for r in rows] == [{"seq", "event", "tool_name", "tool_use_id", "at"}] * len(
        rows
    )
    assert [{k: r[k] for k in ("event", "tool_name", "tool_use_id")} for r in rows] == (
        expected_rows()
    )
    assert len(rows) == 13
    assert [r["seq"] for r in rows] == list(range(1, 14))
    assert all(ISO.match(r["at"]) for r in rows)
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    # The tool events carry their call; the others say null, not "" or a missing key.
    tools = [r for r in rows if r["event"] in ("PreToolUse", "PostToolUse")]
    assert len(tools) == 6 and all(r["tool_name"] and r["tool_use_id"] for r in tools)
    assert rows[0]["tool_name"] is None and rows[0]["tool_use_id"] is None


def test_agrees_with_sessions_show_and_survives_a_catch_up(project: Path) -> None:
    """``show`` counts the same events; folding the journal into the stored record (what
    the plugins' drain and ``recover`` do) hides nothing from ``events``, which reads the
    journal itself."""
    before = json.loads(cli(project, "--json", "sessions", "events", SID).stdout)
    show = json.loads(cli(project, "--json", "sessions", "show", SID).stdout)
    assert show["events"] == len(before)
    rec = SessionStore(StateDir(str(state_root(project)))).catch_up(SID)
    assert rec.applied_seq == 13  # the record now holds every event: the cursor moved
    after = json.loads(cli(project, "--json", "sessions", "events", SID).stdout)
    assert after == before


def test_human_output_is_one_line_per_event(project: Path) -> None:
    p = cli(project, "sessions", "events", SID)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 13
    assert lines[0].split() == ["1", lines[0].split()[1], "SessionStart"]
    bash = [ln for ln in lines if "Bash" in ln]
    assert [ln.split()[2] for ln in bash] == ["PreToolUse", "PostToolUse"]
    assert all(ln.split()[-1].startswith("toolu_") for ln in bash)
    # The --json flag after the command means the same as before it.
    assert json.loads(cli(project, "sessions", "events", SID, "--json").stdout)[0]["seq"] == 1


def test_unknown_session_exits_3_and_bad_id_exits_2(tmp_path: Path) -> None:
    unknown = cli(tmp_path, "sessions", "events", "0b1c2d3e-0000-4000-8000-000000000000")
    assert unknown.returncode == 3
    assert unknown.stderr.startswith("claude-state: error:") and unknown.stdout == ""
    for bad in ("../x", "a/b", "x" * 200, ""):
        p = cli(tmp_path, "sessions", "events", bad)
        assert p.returncode == 2, (bad, p.stderr)
        assert p.stderr.startswith("claude-state: error:")
    # Refusals touch nothing: not even the state directory was created.
    assert not state_root(tmp_path).exists()


def test_an_empty_state_dir_is_not_found_too(project: Path, tmp_path: Path) -> None:
    """A session known elsewhere is unknown here: exit 3, not an empty list."""
    assert cli(tmp_path, "--json", "sessions", "events", SID).returncode == 3
    assert cli(project, "--json", "sessions", "events", SID).returncode == 0


def test_a_record_that_is_not_a_hook_event_is_left_out(tmp_path: Path) -> None:
    """A damaged-but-checksummed payload (not JSON, or JSON without an event) is skipped,
    as the catch-up skips it; the events around it keep their own sequence numbers."""
    state = StateDir(str(state_root(tmp_path))).ensure()
    good = [journal.wrap(data) for _name, data in fixtures()[:2]]
    journal.append(state, SID, [good[0], b"not json", b'{"t": 1.0, "ev": "x"}', good[1]])
    rows = json.loads(cli(tmp_path, "--json", "sessions", "events", SID).stdout)
    assert [(r["seq"], r["event"]) for r in rows] == [(1, "SessionStart"), (4, "UserPromptSubmit")]
