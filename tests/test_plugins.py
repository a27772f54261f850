"""Every hook fires with the documented arguments; plugins load; the trace switch works."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hookutil import SID, event

from claude_state.clock import now_iso
from claude_state.domain.definition import parse_definition
from claude_state.domain.ops import op_cancel, op_pause, op_resume, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.plugins import hookimpl, hookspecs, manager, notify
from claude_state.plugins.dispatch import drain, read_cursor
from claude_state.plugins.workflows import workflow_listener
from claude_state.storage import journal
from claude_state.storage.layout import StateDir


class Recorder:
    """Records every hook call with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def last(self, name: str) -> dict[str, Any]:
        return [kw for n, kw in self.calls if n == name][-1]


def _make_impl(name: str) -> Any:
    spec = getattr(hookspecs, name)
    params = list(spec.__code__.co_varnames[: spec.__code__.co_argcount])
    # pluggy reads the parameter names: give the impl the spec's exact signature.
    args = ", ".join(params)
    kwargs = ", ".join(f"{p}={p}" for p in params)
    src = f"def {name}(self, {args}):\n    self.calls.append(({name!r}, dict({kwargs})))\n"
    ns: dict[str, Any] = {}
    exec(src, ns)
    return hookimpl(ns[name])


HOOK_NAMES = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "claude_state_spec")]
for _n in HOOK_NAMES:
    setattr(Recorder, _n, _make_impl(_n))


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateDir]:
    monkeypatch.delenv("CLAUDE_STATE_PLUGINS", raising=False)
    monkeypatch.delenv("CLAUDE_STATE_TRACE", raising=False)
    monkeypatch.setenv("CLAUDE_STATE_CONFIG", str(tmp_path / "none.json"))
    manager.reset()
    sd = StateDir(tmp_path / "state").ensure()
    yield sd
    manager.reset()


@pytest.fixture
def rec(state: StateDir) -> Recorder:
    r = Recorder()
    manager.get_plugin_manager(state).register(r, name="recorder")
    return r


def _journal(state: StateDir, *events: bytes) -> None:
    journal.append(state, SID, [journal.wrap(e) for e in events])


def _drain(state: StateDir, *events: bytes) -> None:
    _journal(state, *events)
    drain(state, SID)


def _wf(state: StateDir) -> WorkflowStore:
    store = WorkflowStore(state)
    store.listeners.append(workflow_listener(state))
    store.create(
        parse_definition(
            {
                "id": "w",
                "name": "W",
                "steps": [{"id": "a"}, {"id": "b", "deps": ["a"], "max_retries": 0}],
            }
        )
    )
    return store


# -- session hooks (from the journal) ---------------------------------------------------


def test_hook_session_start(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("SessionStart", source="resume"))
    kw = rec.last("session_start")
    assert kw["session"].id == SID and kw["event"].get("source") == "resume"
    assert kw["event"].seq == 1


def test_hook_session_end(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("SessionEnd", reason="logout"))
    assert rec.last("session_end")["reason"] == "logout"


def test_hook_user_prompt(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("UserPromptSubmit", prompt="hello"))
    assert rec.last("user_prompt")["prompt"] == "hello"


def test_hook_tool_call_start(state: StateDir, rec: Recorder) -> None:
    _drain(
        state,
        event("PreToolUse", tool_name="Read", tool_use_id="t1", tool_input={"file_path": "/a"}),
    )
    call = rec.last("tool_call_start")["call"]
    assert (call.id, call.name, call.status, call.input) == (
        "t1",
        "Read",
        "started",
        {"file_path": "/a"},
    )


def test_hook_tool_call_complete(state: StateDir, rec: Recorder) -> None:
    _drain(
        state,
        event(
            "PostToolUse", tool_name="Read", tool_use_id="t1", tool_response={"x": 1}, duration_ms=3
        ),
        event("PostToolUseFailure", tool_name="Bash", tool_use_id="t2", error="Exit code 1"),
    )
    calls = [kw["call"] for n, kw in rec.calls if n == "tool_call_complete"]
    assert [(c.id, c.status, c.error) for c in calls] == [
        ("t1", "completed", None),
        ("t2", "failed", "Exit code 1"),
    ]
    assert calls[0].response == {"x": 1} and calls[0].duration_ms == 3


def test_hook_subagent_start(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("SubagentStart", agent_id="a1", agent_type="Explore"))
    assert rec.last("subagent_start")["event"].get("agent_id") == "a1"


def test_hook_subagent_stop(state: StateDir, rec: Recorder) -> None:
    _drain(
        state, event("SubagentStop", agent_id="a1", agent_type="Explore", stop_hook_active=False)
    )
    assert rec.last("subagent_stop")["event"].get("agent_type") == "Explore"


def test_hook_turn_end(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("Stop", stop_hook_active=False, last_assistant_message="done"))
    assert rec.last("turn_end")["event"].get("last_assistant_message") == "done"


def test_hook_pre_compact(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("PreCompact", trigger="manual", custom_instructions=""))
    assert rec.last("pre_compact")["trigger"] == "manual"


def test_hook_hook_event(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("Notification", message="hi"), event("UserPromptSubmit", prompt="p"))
    events = [kw["event"] for n, kw in rec.calls if n == "hook_event"]
    assert [(e.name, e.seq) for e in events] == [("Notification", 1), ("UserPromptSubmit", 2)]
    # hook_event comes before the specific hook
    assert rec.names()[-2:] == ["hook_event", "user_prompt"]


def test_delivery_in_order_once_and_resumable(state: StateDir, rec: Recorder) -> None:
    _drain(state, event("UserPromptSubmit", prompt="1"))
    _drain(state, event("UserPromptSubmit", prompt="2"), event("UserPromptSubmit", prompt="3"))
    drain(state, SID)  # nothing new
    assert [kw["prompt"] for n, kw in rec.calls if n == "user_prompt"] == ["1", "2", "3"]
    assert read_cursor(state, SID) == 3


def test_duplicate_tool_event_delivered_once(state: StateDir, rec: Recorder) -> None:
    e = event("PostToolUse", tool_name="Read", tool_use_id="dup")
    _drain(state, e, e)
    assert rec.names().count("tool_call_complete") == 1


# -- workflow hooks (from WorkflowStore listeners) ----------------------------------------


def test_hook_workflow_start(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    assert rec.names()[:2] == ["workflow_start", "step_start"]
    assert rec.last("workflow_start")["workflow"].id == "w"


def test_hook_step_start(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    kw = rec.last("step_start")
    assert kw["step"].id == "a" and kw["step"].status == "running"


def test_hook_step_complete(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    store.apply("w", op_step("a", "completed", output={"ok": 1}, at=now_iso()))
    assert rec.last("step_complete")["step"].id == "a"


def test_hook_workflow_complete(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    for s in ("a", "b"):
        store.apply("w", op_step(s, "running", at=now_iso()))
        store.apply("w", op_step(s, "completed", at=now_iso()))
    assert rec.last("workflow_complete")["workflow"].status == "completed"
    assert rec.names().count("workflow_start") == 1


def test_hook_step_failed(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    store.apply("w", op_step("a", "failed", error="boom", at=now_iso()))
    kw = rec.last("step_failed")
    assert kw["step"].id == "a" and kw["error"] == "boom"


def test_hook_workflow_failed(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    store.apply("w", op_step("a", "failed", error="boom", at=now_iso()))
    wf = store.load("w")
    if wf.status != "failed":
        pytest.skip(f"the model keeps a failed step's workflow {wf.status!r}")
    assert rec.last("workflow_failed")["step"].id == "a"


def test_hook_workflow_paused(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_pause(at=now_iso()))
    assert rec.last("workflow_paused")["workflow"].status == "paused"


def test_hook_workflow_resumed(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_pause(at=now_iso()))
    store.apply("w", op_resume(at=now_iso()))
    assert rec.last("workflow_resumed")["workflow"].status != "paused"


def test_hook_workflow_cancelled(state: StateDir, rec: Recorder) -> None:
    store = _wf(state)
    store.apply("w", op_cancel(at=now_iso()))
    assert rec.last("workflow_cancelled")["workflow"].status == "cancelled"


# -- checkpoints and crashes -------------------------------------------------------------


def test_hook_checkpoint_created(
    state: StateDir, rec: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "cfg.json").write_text(json.dumps({"auto_checkpoint": {"every_steps": 1}}))
    monkeypatch.setenv("CLAUDE_STATE_CONFIG", str(tmp_path / "cfg.json"))
    manager.reset()
    r = Recorder()
    manager.get_plugin_manager(state).register(r, name="recorder")
    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    store.apply("w", op_step("a", "completed", at=now_iso()))
    cp = r.last("checkpoint_created")["checkpoint"]
    assert cp["workflow_id"] == "w" and cp["type"] == "automatic" and "steps" in cp["tags"]


def test_turn_end_and_pre_compact_checkpoint_the_active_workflow(
    state: StateDir, rec: Recorder
) -> None:
    from claude_state.domain.sessions import SessionStore

    store = _wf(state)
    store.apply("w", op_step("a", "running", at=now_iso()))
    SessionStore(state).note_workflow(SID, "w", "a")
    _drain(state, event("Stop", stop_hook_active=False), event("PreCompact", trigger="auto"))
    cps = [kw["checkpoint"] for n, kw in rec.calls if n == "checkpoint_created"]
    assert [(c["type"], c["tags"][0]) for c in cps] == [
        ("automatic", "turn"),
        ("pre_compact", "pre_compact"),
    ]
    _drain(state, event("Stop", stop_hook_active=False))  # nothing changed: no new turn checkpoint
    assert len([n for n in rec.names() if n == "checkpoint_created"]) == 2


def test_hook_crash_detected(state: StateDir, rec: Recorder) -> None:
    from claude_state.domain.recovery import RecoveryPlan

    plan = RecoveryPlan("dead-1", "resume_from_wal", "none")
    notify("crash_detected", state=state, session_id="dead-1", plan=plan)
    kw = rec.last("crash_detected")
    assert kw["session_id"] == "dead-1" and kw["plan"] is plan


# -- loading and switches ----------------------------------------------------------------


PLUGIN_SRC = """
from claude_state.plugins import hookimpl
SEEN = []
@hookimpl
def user_prompt(prompt):
    SEEN.append(prompt)
class Boom:
    @hookimpl
    def user_prompt(self, session):
        raise RuntimeError("plugin bug")
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cs_test_plugin_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SRC)
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[claude_state]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_entry_point_plugin_loads(state: StateDir, plugin_module: str) -> None:
    pm = manager.get_plugin_manager(state)
    assert pm.get_plugin(plugin_module) is not None
    _drain(state, event("UserPromptSubmit", prompt="via entry point"))
    assert sys.modules[plugin_module].SEEN == ["via entry point"]


def test_builtin_mode_skips_third_party(
    state: StateDir, plugin_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_STATE_PLUGINS", "builtin")
    pm = manager.get_plugin_manager(state)
    assert pm.get_plugin(plugin_module) is None
    assert pm.get_plugin("claude_state.persistence") is not None


def test_none_mode_fires_nothing_and_keeps_the_cursor(
    state: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_STATE_PLUGINS", "none")
    _drain(state, event("UserPromptSubmit", prompt="x"))
    assert read_cursor(state, SID) == 0
    assert notify("user_prompt", state=state, session=None, prompt="x") == []


def test_config_plugins_load_and_a_failing_plugin_is_isolated(
    state: StateDir, plugin_module: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "cfg.json").write_text(
        json.dumps({"plugins": [f"{plugin_module}:Boom", "no_such_module_xyz"]})
    )
    monkeypatch.setenv("CLAUDE_STATE_CONFIG", str(tmp_path / "cfg.json"))
    manager.reset()
    pm = manager.get_plugin_manager(state)
    assert pm.get_plugin(f"{plugin_module}:Boom") is not None
    _drain(state, event("UserPromptSubmit", prompt="still delivered"))
    assert sys.modules[plugin_module].SEEN == ["still delivered"]
    log = (Path(state.logs) / "plugins.log").read_text()
    assert "no_such_module_xyz" in log and "plugin bug" in log


def test_trace_switch(
    state: StateDir,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CLAUDE_STATE_TRACE", "1")
    _drain(state, event("UserPromptSubmit", prompt="traced"))
    err = capsys.readouterr().err
    assert "claude-state trace: user_prompt(" in err and "recorder ->" in err
    trace_file = tmp_path / "trace.log"
    monkeypatch.setenv("CLAUDE_STATE_TRACE", str(trace_file))
    _drain(state, event("UserPromptSubmit", prompt="to a file"))
    assert "user_prompt(" in trace_file.read_text()
    monkeypatch.setenv("CLAUDE_STATE_TRACE", "0")
    _drain(state, event("UserPromptSubmit", prompt="quiet"))
    assert "claude-state trace" not in capsys.readouterr().err
