"""The durable-execution API: memoization, retries, timeouts, replay, children, control."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_state.clock import now_iso
from claude_state.domain import ops
from claude_state.domain.store import WorkflowStore
from claude_state.engine import Runner
from claude_state.errors import NotFoundError
from claude_state.storage.layout import StateDir

HELPER = Path(__file__).parent / "helpers" / "engine_child.py"


@pytest.fixture
def store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(StateDir(tmp_path / "state").ensure())


def dag(**extra: Any) -> dict[str, Any]:
    return {
        "id": "w",
        "steps": [
            {"id": "a"},
            {"id": "b", "deps": ["a"], **extra},
            {"id": "c", "deps": ["b"]},
        ],
    }


def test_runs_in_dependency_order_and_passes_outputs(store: WorkflowStore) -> None:
    seen: list[str] = []

    def step(name: str) -> Any:
        def fn(ctx: Any) -> Any:
            seen.append(name)
            return {"from": name, "inputs": ctx.inputs}

        return fn

    wf = Runner(store, {k: step(k) for k in "abc"}).start(dag())
    assert wf.status == "completed" and seen == ["a", "b", "c"]
    assert store.resolve(wf.step("c").output)["inputs"]["b"]["from"] == "b"


def test_completed_steps_are_memoized_across_runs(store: WorkflowStore) -> None:
    count = {"a": 0, "b": 0, "c": 0}

    def fn(name: str) -> Any:
        def f(ctx: Any) -> str:
            count[name] += 1
            if name == "c" and count["c"] == 1:
                raise RuntimeError("first try of c fails")
            return name

        return f

    handlers = {k: fn(k) for k in "abc"}
    Runner(store, handlers).start(
        {"id": "w", "steps": [{"id": "a"}, {"id": "b", "deps": ["a"]}, {"id": "c", "deps": ["b"]}]}
    )
    wf = store.load("w")
    assert wf.status == "failed" and wf.step("c").status == "failed"
    assert count == {"a": 1, "b": 1, "c": 1}


def test_retries_until_max_retries_then_fails(store: WorkflowStore) -> None:
    attempts: list[int] = []

    def flaky(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) < 3:
            raise RuntimeError("flaky")
        return "ok"

    wf = Runner(store, {"a": lambda c: 1, "b": flaky, "c": lambda c: 3}).start(dag(max_retries=2))
    assert wf.status == "completed" and attempts == [1, 2, 3]

    always: list[int] = []

    def bad(ctx: Any) -> None:
        always.append(1)
        raise ValueError("never works")

    d = dag(max_retries=1)
    d["id"] = "w2"
    wf2 = Runner(store, {"a": lambda c: 1, "b": bad, "c": lambda c: 3}).start(d)
    assert wf2.status == "failed" and len(always) == 2
    assert "ValueError: never works" in (wf2.step("b").error or "")


def test_timeout_marks_the_step_failed(store: WorkflowStore) -> None:
    import time

    d = dag(timeout=0.2)
    wf = Runner(store, {"a": lambda c: 1, "b": lambda c: time.sleep(5), "c": lambda c: 3}).start(d)
    assert wf.status == "failed"
    assert "timed out after 0.2s" in (wf.step("b").error or "")


def test_pause_stops_before_the_next_step_and_resume_continues(store: WorkflowStore) -> None:
    from claude_state.domain.definition import parse_definition

    ran: list[str] = []
    handlers = {"a": lambda c: "a", "b": lambda c: ran.append("b"), "c": lambda c: ran.append("c")}
    runner = Runner(store, handlers)
    store.create(parse_definition(dag()))
    store.apply("w", ops.op_pause(now_iso()))
    assert runner.run("w").status == "paused" and ran == []
    store.apply("w", ops.op_resume(now_iso()))
    assert runner.run("w").status == "completed" and ran == ["b", "c"]


def test_cancelled_workflow_runs_nothing(store: WorkflowStore) -> None:
    from claude_state.domain.definition import parse_definition

    store.create(parse_definition(dag()))
    store.apply("w", ops.op_cancel(now_iso()))
    ran: list[str] = []
    wf = Runner(store, {k: (lambda c, k=k: ran.append(k)) for k in "abc"}).run("w")
    assert wf.status == "cancelled" and ran == []


def test_missing_handler_is_refused(store: WorkflowStore) -> None:
    with pytest.raises(NotFoundError):
        Runner(store, {"a": lambda c: 1}).start(dag())


def test_child_workflow_is_resumed_not_duplicated(store: WorkflowStore) -> None:
    runs = {"k": 0}

    def kid(ctx: Any) -> int:
        runs["k"] += 1
        return 7

    def parent(ctx: Any) -> Any:
        return ctx.child({"steps": [{"id": "k"}]}, {"k": kid})

    wf = Runner(store, {"p": parent}).start({"id": "par", "steps": [{"id": "p"}]})
    assert store.resolve(wf.step("p").output) == {"k": 7}
    child = store.load("par.p")
    assert child.parent_id == "par" and child.status == "completed"
    # Running the parent step again (as after a crash) resumes the finished child.
    Runner(store, {"p": parent}).start({"id": "par2", "steps": [{"id": "p"}]})
    assert runs["k"] == 2  # par2 has its own child; par's child was not re-run
    assert store.exists("par2.p")


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _kill_mid_step(state: Path) -> list[object]:
    """Run the helper until step b has recorded its values, SIGKILL it; the values."""
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(state), "hang"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert line.startswith("VALUES"), line
    values: list[object] = ast.literal_eval(line.split(" ", 1)[1])
    return values


def _finish(state: Path) -> tuple[list[object], str]:
    """Run the helper again to completion: (the values step b saw, its stdout)."""
    out = subprocess.run(
        [sys.executable, str(HELPER), str(state), "finish"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.splitlines()[0].split(" ", 1)[1]), out.stdout


def test_deterministic_replay_after_sigkill(tmp_path: Path) -> None:
    """A step killed mid-way returns the same now/random/uuid values when re-run."""
    state = tmp_path / "state"
    first = _kill_mid_step(state)
    assert WorkflowStore(StateDir(state)).load("det").step("b").status == "running"
    second, stdout = _finish(state)
    assert second == first
    assert "DONE completed" in stdout
    wf = WorkflowStore(StateDir(state)).load("det")
    assert wf.step("a").attempts == 1  # memoized: not re-run
    assert wf.step("b").attempts == 2  # interrupted, then run again


def test_replay_detects_a_changed_value_without_the_record(tmp_path: Path) -> None:
    """Control: without the recorded values a re-run gets different ones."""
    state = tmp_path / "state"
    first = _kill_mid_step(state)
    store = WorkflowStore(StateDir(state))
    store.apply("det", ops.op_agent_state("b", {}, now_iso()))  # wipe the record
    second, _stdout = _finish(state)
    assert second != first
