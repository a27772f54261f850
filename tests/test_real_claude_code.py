"""The real Claude Code client, end to end, against a fake Messages API on 127.0.0.1.

``@anthropic-ai/claude-code`` (pinned, :data:`realclient.install.VERSION`) is installed
from npm on first use and cached between runs; the tests skip only where node or npm is
missing. Each test gets a throw-away HOME and git project with claude-state installed as
its hooks (``claude-state install``) and a witness hook on the same events, and a fake
Anthropic API (:mod:`realclient.fake_api`) that plays scripted turns with ``tool_use``
blocks over SSE and records every request. The client runs in print mode, as root with
``IS_SANDBOX=1``, with non-essential traffic off and no route to any host but
127.0.0.1. Crashes are real ``SIGKILL`` of the client during a running Bash tool call.

What the scenarios check (issue 16):

1. every event the client fires is recorded: the witness log and ``claude-state
   sessions events`` agree event for event (control: with one event's claude-state hook
   removed, the comparison shows exactly the missing events);
2. a client killed during a long Bash call shows as crashed, and the next session's first
   model request carries the crash context (session id, the call in flight, the recover
   command); control: the killed session's own request carried none;
3. ``--resume`` takes the session over, and killing the resumed client is a crash
   (with and without a ``recover`` in between);
4. a resume that fails ("No conversation found": an unknown id, or a crashed session
   whose transcript is gone) leaves the crash reported and ends nothing;
5. a second terminal resuming a live session and exiting leaves the first client's
   lease alone, and killing the first client afterwards is a crash;
6. ``claude plugin validate`` accepts this repository's plugin.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from realclient.fake_api import FakeAnthropic, Text, ToolUse, Turn
from realclient.harness import Agent, Sandbox, hook_runs, new_sid, wait_for
from realclient.install import Unavailable, claude_code

REPO = Path(__file__).resolve().parent.parent
BUILD = "sh slow_build.sh"  # the long Bash call (the script sleeps 60 s)


def scripts(project: Path) -> dict[str, list[Turn]]:
    """The assistant turns the fake API plays, by the marker in the prompt."""
    notes = str(project / "notes.txt")
    return {
        "tools": [
            [Text("Looking."), ToolUse("toolu_e2e_echo", "Bash", {"command": "echo hi"})],
            [ToolUse("toolu_e2e_read", "Read", {"file_path": notes})],
            [ToolUse("toolu_e2e_fail", "Bash", {"command": "echo oops >&2; exit 3"})],
            [Text("All done.")],
        ],
        "long": [
            [ToolUse("toolu_e2e_build", "Bash", {"command": BUILD, "description": "build"})],
            [Text("Built.")],
        ],
        "long2": [
            [ToolUse("toolu_e2e_build2", "Bash", {"command": BUILD, "description": "again"})],
            [Text("Built again.")],
        ],
        "hello": [[Text("Hello.")]],
    }


@pytest.fixture(scope="module")
def claude() -> Path:
    try:
        return claude_code()
    except Unavailable as exc:
        pytest.skip(f"the real Claude Code client cannot be installed here: {exc}")


@pytest.fixture
def world(tmp_path: Path, claude: Path) -> Iterator[tuple[FakeAnthropic, Sandbox]]:
    with FakeAnthropic(scripts(tmp_path / "project"), lifetime=150) as api:
        sb = Sandbox(tmp_path, claude, api.url)
        try:
            yield api, sb
        finally:
            sb.close()


# -- helpers ---------------------------------------------------------------------------------


def witnessed_rows(sb: Sandbox, sid: str) -> list[tuple[Any, ...]]:
    return [
        (e["hook_event_name"], e.get("tool_name"), e.get("tool_use_id"))
        for e in (ln["ev"] for ln in sb.witnessed(sid))
    ]


def recorded_rows(sb: Sandbox, sid: str) -> list[tuple[Any, ...]]:
    return [(r["event"], r["tool_name"], r["tool_use_id"]) for r in sb.recorded(sid)]


def show(sb: Sandbox, sid: str) -> dict[str, Any]:
    doc: dict[str, Any] = sb.cli_json("sessions", "show", sid)
    return doc


def status_counts(sb: Sandbox) -> dict[str, int]:
    counts: dict[str, int] = sb.cli_json("status")["sessions"]
    return counts


def in_long_build(sb: Sandbox, sid: str, call_id: str) -> None:
    """Wait until the client is inside the long Bash call: both hooks saw its
    PreToolUse, claude-state made it durable, and the build's ``sleep`` runs."""
    wait_for(
        f"the witness to see PreToolUse {call_id}", lambda: sb.witnessed_pre_tool(sid, call_id)
    )
    wait_for(
        f"claude-state to record PreToolUse {call_id}",
        lambda: ("PreToolUse", "Bash", call_id) in recorded_rows(sb, sid),
    )
    wait_for(
        "the build's sleep to run",
        lambda: any(c[:2] == ["sleep", "60"] for c in _cmdlines(sb)),
    )


def _cmdlines(sb: Sandbox) -> list[list[str]]:
    """The command lines of the sandbox's live processes (one that exits meanwhile is
    left out)."""
    import psutil

    out = []
    for p in sb.tagged():
        try:
            out.append(p.cmdline())
        except psutil.Error:
            continue
    return out


def crash_in_long_build(sb: Sandbox, sid: str) -> Agent:
    """Start a session that runs the long build, SIGKILL the client inside it."""
    agent = sb.start("Build it. [[script:long]]", sid=sid)
    in_long_build(sb, sid, "toolu_e2e_build")
    agent.kill9()
    return agent


def assert_crashed(sb: Sandbox, sid: str, pid: int | None = None) -> dict[str, Any]:
    """*sid* is reported crashed by ``sessions show``, ``sessions list --crashed``,
    ``status`` and ``recover --dry-run``."""
    d = show(sb, sid)
    assert d["status"] == "crashed", d
    if pid is not None:
        assert d["pid"] == pid, d
    assert sid in [r["id"] for r in sb.cli_json("sessions", "list", "--crashed")]
    assert status_counts(sb)["crashed"] >= 1
    plans = sb.cli_json("recover", "--dry-run")["plans"]
    assert sid in [p["session_id"] for p in plans], plans
    return d


def no_conversation(agent: Agent) -> bool:
    return "No conversation found" in agent.stdout() + agent.stderr()


# -- 1. every fired event is recorded ----------------------------------------------------------


def test_every_fired_event_is_recorded(world: tuple[FakeAnthropic, Sandbox]) -> None:
    api, sb = world
    sid = new_sid()
    debug = sb.root / "debug.log"
    agent = sb.run("Do the chores. [[script:tools]]", sid=sid, extra=("--debug-file", str(debug)))
    assert agent.proc.returncode == 0, agent.stderr()[-2000:]
    assert [r.turn for r in api.scripted("tools")] == [0, 1, 2, 3]
    # One model request a turn and nothing else, to no other host.
    assert [(r.method, r.path.split("?")[0]) for r in api.snapshot()] == [
        ("POST", "/v1/messages")
    ] * 4
    assert sb.blackhole.requests == []
    [result] = [m for m in agent.messages() if m.get("type") == "result"]
    assert (result["session_id"], result["subtype"], result["result"]) == (
        sid,
        "success",
        "All done.",
    )

    witnessed = witnessed_rows(sb, sid)
    recorded = recorded_rows(sb, sid)
    assert recorded == witnessed
    # Not vacuous: the client really fired the whole session, every kind of event (of
    # those claude-state subscribes: PostToolBatch, after each batch of tool results,
    # only where the installed version hooks it).
    fired = [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolBatch",
        "PreToolUse",
        "PostToolUse",
        "PostToolBatch",
        "PreToolUse",
        "PostToolUseFailure",
        "PostToolBatch",
        "Stop",
        "SessionEnd",
    ]
    expected = [e for e in fired if e in sb.events]
    assert len(expected) >= 10
    assert [w[0] for w in witnessed] == expected
    assert [w[2] for w in witnessed if w[2]] == [
        "toolu_e2e_echo",
        "toolu_e2e_echo",
        "toolu_e2e_read",
        "toolu_e2e_read",
        "toolu_e2e_fail",
        "toolu_e2e_fail",
    ]
    d = show(sb, sid)
    assert (d["status"], d["events"], d["tool_calls"], d["failed_tool_calls"]) == (
        "ended",
        len(expected),
        3,
        1,
    )
    assert d["pid"] == agent.pid

    # The client's own report: every claude-state hook run finished with status 0.
    runs = [r for r in hook_runs(debug) if "claude_state" in r[1] or "claude-state" in r[1]]
    assert len(runs) >= 8, hook_runs(debug)  # SessionEnd's run is not always logged
    assert [r for r in runs if r[2] != 0] == []


def test_control_a_missing_hook_shows_in_the_comparison(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    """With claude-state's PostToolUse hook removed (the witness keeps its own), the
    comparison reports exactly the PostToolUse events, nothing else."""
    _api, sb = world
    for path in sb.settings_files():
        doc = json.loads(path.read_text())
        doc.get("hooks", {}).pop("PostToolUse", None)
        path.write_text(json.dumps(doc, indent=2))
    sid = new_sid()
    assert sb.run("Do the chores. [[script:tools]]", sid=sid).proc.returncode == 0
    witnessed, recorded = witnessed_rows(sb, sid), recorded_rows(sb, sid)
    assert recorded != witnessed
    assert [w for w in witnessed if w not in recorded] == [
        ("PostToolUse", "Bash", "toolu_e2e_echo"),
        ("PostToolUse", "Read", "toolu_e2e_read"),
    ]
    assert [w for w in witnessed if w[0] != "PostToolUse"] == recorded


def test_control_the_blackhole_sees_traffic_when_it_is_not_switched_off(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    """The "no other host" check above is not vacuous: with non-essential traffic allowed,
    the same session makes the client try hosts other than ANTHROPIC_BASE_URL, and every
    attempt lands in the blackhole proxy (so none reached the network)."""
    _api, sb = world
    traffic_on = {
        k: None
        for k in (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
            "DISABLE_AUTOUPDATER",
            "DISABLE_BUG_COMMAND",
        )
    }
    agent = sb.run("Do the chores. [[script:tools]]", sid=new_sid(), env=traffic_on)
    assert agent.proc.returncode == 0, agent.stderr()[-2000:]
    assert sb.blackhole.requests != []
    assert all(r.startswith("CONNECT ") for r in sb.blackhole.requests), sb.blackhole.requests


# -- 2. a crash, and the next session hears of it ---------------------------------------------


def test_killed_during_long_bash_then_next_session_gets_the_crash_context(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    api, sb = world
    crashed = new_sid()
    agent = crash_in_long_build(sb, crashed)

    d = assert_crashed(sb, crashed, pid=agent.pid)
    assert status_counts(sb) == {"active": 0, "crashed": 1, "ended": 0, "recovered": 0}
    assert [c["tool_use_id"] for c in d["in_flight"]] == ["toolu_e2e_build"]
    assert d["in_flight"][0]["summary"] == BUILD
    # Nothing after the PreToolUse: no result, no end.
    assert recorded_rows(sb, crashed)[-1] == ("PreToolUse", "Bash", "toolu_e2e_build")

    nxt = new_sid()
    assert sb.run("Hello again. [[script:hello]]", sid=nxt).proc.returncode == 0
    [first] = [r for r in api.scripted("hello") if r.turn == 0]
    sent = json.dumps(first.body)
    for fact in (crashed, BUILD, f"claude-state recover {crashed}"):
        assert fact in sent, f"{fact!r} not in the next session's model request"
    # Control: the killed session's own first request (before any crash) carried none.
    [before] = [r for r in api.scripted("long") if r.turn == 0]
    assert crashed not in json.dumps(before.body["messages"])
    assert "claude-state recover" not in json.dumps(before.body)


# -- 3. resume takes over -----------------------------------------------------------------


@pytest.mark.parametrize("recover_first", [False, True], ids=["crashed", "recovered"])
def test_resume_takes_the_session_and_killing_it_is_a_crash(
    world: tuple[FakeAnthropic, Sandbox], recover_first: bool
) -> None:
    _api, sb = world
    sid = new_sid()
    crash_in_long_build(sb, sid)
    assert_crashed(sb, sid)
    if recover_first:
        p = sb.cli("recover", sid)
        assert p.returncode == 0, p.stderr
        assert show(sb, sid)["status"] == "recovered"

    resumed = sb.start("Carry on. [[script:long2]]", resume=sid)
    in_long_build(sb, sid, "toolu_e2e_build2")
    d = show(sb, sid)
    assert (d["status"], d["pid"]) == ("active", resumed.pid), d
    assert d["lease"]["held"] is True, d

    resumed.kill9()
    assert_crashed(sb, sid, pid=resumed.pid)


# -- 4. a resume that never starts --------------------------------------------------------------


def test_failed_resume_of_an_unknown_id_leaves_the_crash_reported(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    _api, sb = world
    crashed = new_sid()
    crash_in_long_build(sb, crashed)
    before = status_counts(sb)

    unknown = new_sid()
    agent = sb.run("Where was I? [[script:hello]]", resume=unknown)
    assert agent.proc.returncode != 0 and no_conversation(agent), agent.stderr()[-1000:]
    # The client fired only a SessionEnd for it, from a process that holds no lease.
    assert [w[0] for w in witnessed_rows(sb, unknown)] == ["SessionEnd"]

    assert_crashed(sb, crashed)
    after = status_counts(sb)
    assert (after["crashed"], after["active"]) == (before["crashed"], before["active"]), after
    # Issue 16 (d): no `ended` session with `pid: null` for it. If it is listed, it names
    # the process that sent the SessionEnd.
    ghosts = [r for r in sb.cli_json("sessions", "list") if r["id"] == unknown]
    assert [(g["status"], g["pid"]) for g in ghosts if g["pid"] is None] == [], ghosts
    assert all(g["pid"] == agent.pid for g in ghosts), ghosts


def test_failed_resume_of_a_crashed_session_leaves_the_crash_reported(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    _api, sb = world
    sid = new_sid()
    agent = crash_in_long_build(sb, sid)
    transcript = sb.transcript(sid)
    assert transcript is not None
    transcript.unlink()  # the conversation is gone: the resume cannot start

    failed = sb.run("Carry on. [[script:hello]]", resume=sid)
    assert failed.proc.returncode != 0 and no_conversation(failed), failed.stderr()[-1000:]
    assert witnessed_rows(sb, sid)[-1][0] == "SessionEnd"  # it did fire one

    d = assert_crashed(sb, sid, pid=agent.pid)
    assert [c["tool_use_id"] for c in d["in_flight"]] == ["toolu_e2e_build"]
    [plan] = [p for p in sb.cli_json("recover", "--dry-run")["plans"] if p["session_id"] == sid]
    assert plan["applied"] is False


# -- 5. two terminals ----------------------------------------------------------------------


def test_second_terminal_resuming_a_live_session_leaves_the_first_ones_lease(
    world: tuple[FakeAnthropic, Sandbox],
) -> None:
    _api, sb = world
    sid = new_sid()
    first = sb.start("Build it. [[script:long]]", sid=sid)
    in_long_build(sb, sid, "toolu_e2e_build")

    second = sb.run("Quick question. [[script:hello]]", resume=sid)
    assert second.proc.returncode == 0, second.stderr()[-1000:]
    starts = [ln for ln in sb.witnessed(sid) if ln["ev"]["hook_event_name"] == "SessionStart"]
    assert [(ln["ev"].get("source"), ln["claude_pid"]) for ln in starts] == [
        ("startup", str(first.pid)),
        ("resume", str(second.pid)),
    ]
    # The second client ended its part: it fired SessionEnd as it exited.
    assert sb.witnessed(sid)[-1]["ev"]["hook_event_name"] == "SessionEnd"

    assert first.proc.poll() is None, "the first client should still be in its build"
    d = show(sb, sid)
    assert (d["status"], d["pid"]) == ("active", first.pid), d
    assert d["lease"]["held"] is True, d

    first.kill9()
    assert_crashed(sb, sid, pid=first.pid)


# -- 6. the plugin ------------------------------------------------------------------------------


def test_plugin_validate_accepts_the_repository(world: tuple[FakeAnthropic, Sandbox]) -> None:
    _api, sb = world
    p = subprocess.run(
        [str(sb.claude), "plugin", "validate", str(REPO)],
        capture_output=True,
        text=True,
        timeout=60,
        env=sb.env(),
        cwd=sb.project,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]


def test_install_is_cached(claude: Path) -> None:
    """A second lookup finds the cached install and runs no npm (well under a second
    per ``--version`` check, against tens of seconds for an install)."""
    t = time.monotonic()
    assert claude_code() == claude
    assert time.monotonic() - t < 20
