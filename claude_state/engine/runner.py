"""Durable execution of a workflow DAG in Python: run, crash, run again, lose nothing.

A :class:`Runner` executes the steps of a stored workflow in dependency order, calling
one Python function per step. Every transition is an op in the workflow's WAL, durable
before the runner moves on, so after a crash :meth:`Runner.run` picks up where it was:

* **memoization**: a completed step is not run again; its stored output is handed to the
  steps that depend on it;
* **retries and timeouts**: a step that raises (or overruns its ``timeout``) is retried
  up to ``max_retries`` times, then the workflow fails;
* **deterministic replay**: ``ctx.now()``, ``ctx.random()`` and ``ctx.uuid()`` record
  each value durably before returning it; when an interrupted step runs again, the same
  calls return the same values in the same order, so its side effects can be made
  idempotent;
* **pause / cancel**: checked before each step; a paused workflow stops cleanly and
  resumes where it stopped;
* **child workflows**: ``ctx.child(definition, handlers)`` runs (or resumes) a workflow
  whose ``parent_id`` is this one and returns its outputs.

Timeouts run the step in a worker thread; Python cannot kill a thread, so an overrunning
step is abandoned (marked failed) and its thread left to finish as a daemon. Steps
that must be interruptible should check ``ctx.deadline`` themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from claude_state.clock import now_iso
from claude_state.domain import ops
from claude_state.domain.definition import parse_definition
from claude_state.domain.model import Workflow
from claude_state.domain.store import WorkflowStore
from claude_state.errors import ClaudeStateError, NotFoundError

Handler = Callable[["StepContext"], Any]

REPLAY_KEY = "replay"


class StepTimeout(ClaudeStateError):
    """A step ran past its ``timeout``."""


class StepContext:
    """What a step function receives: its inputs and the deterministic helpers."""

    def __init__(self, runner: Runner, wf: Workflow, step_id: str) -> None:
        self.runner = runner
        self.workflow_id = wf.id
        self.step_id = step_id
        step = wf.step(step_id)
        self.attempt = step.attempts
        self.deadline = time.monotonic() + step.timeout if step.timeout else None
        self._deps = list(step.deps)
        state = step.agent_state if isinstance(step.agent_state, dict) else {}
        self._recorded: list[Any] = list(state.get(REPLAY_KEY, []))
        self._cursor = 0

    @property
    def inputs(self) -> dict[str, Any]:
        """Outputs of this step's dependencies, by step id (blobs resolved)."""
        wf = self.runner.store.load(self.workflow_id)
        return {d: self.runner.store.resolve(wf.step(d).output) for d in self._deps}

    def _record(self, make: Callable[[], Any]) -> Any:
        if self._cursor < len(self._recorded):
            value = self._recorded[self._cursor]
        else:
            value = make()
            self._recorded.append(value)
            state = {REPLAY_KEY: list(self._recorded)}
            self.runner.store.apply(
                self.workflow_id, ops.op_agent_state(self.step_id, state, now_iso())
            )
        self._cursor += 1
        return value

    def now(self) -> float:
        """Wall-clock time, recorded on first execution and replayed after a crash."""
        return float(self._record(time.time))

    def random(self) -> float:
        """A random float in [0, 1), recorded and replayed like :meth:`now`."""
        import random

        return float(self._record(random.random))

    def uuid(self) -> str:
        """A random UUID4 string, recorded and replayed like :meth:`now`."""
        import uuid

        return str(self._record(lambda: str(uuid.uuid4())))

    def child(
        self, definition: Mapping[str, Any], handlers: Mapping[str, Handler]
    ) -> dict[str, Any]:
        """Run (or resume) a child workflow and return its step outputs.

        The child's id is derived from this step, so re-running the parent step after a
        crash resumes the same child instead of starting another.
        """
        doc = dict(definition)
        doc.setdefault("id", f"{self.workflow_id}.{self.step_id}")
        store = self.runner.store
        if not store.exists(doc["id"]):
            wf = parse_definition(doc)
            wf.parent_id = self.workflow_id
            store.create(wf)
        done = Runner(store, handlers).run(doc["id"])
        if done.status != "completed":
            raise ClaudeStateError(f"child workflow {done.id} ended {done.status}")
        return {s.id: store.resolve(s.output) for s in done.steps}


class Runner:
    """Executes a stored workflow's steps with the given handlers, durably."""

    def __init__(self, store: WorkflowStore, handlers: Mapping[str, Handler]) -> None:
        self.store = store
        self.handlers = dict(handlers)

    def start(self, definition: Mapping[str, Any]) -> Workflow:
        """Create the workflow from *definition* unless it exists, then :meth:`run` it."""
        wf = parse_definition(dict(definition))
        if not self.store.exists(wf.id):
            self.store.create(wf)
        return self.run(wf.id)

    def run(self, workflow_id: str) -> Workflow:
        """Run every runnable step until the workflow completes, fails, pauses or is
        cancelled; safe to call again after a crash (completed steps are skipped)."""
        wf = self.store.load(workflow_id)
        missing = [s.id for s in wf.steps if s.id not in self.handlers]
        if missing:
            raise NotFoundError("step handler", ", ".join(missing))
        interrupted = [s.id for s in wf.steps if s.status == "running"]
        if interrupted:  # a previous run died mid-step: run those steps again
            wf = self.store.apply(
                workflow_id, ops.op_interrupt(interrupted, now_iso(), "runner restarted")
            )
        while True:
            wf = self.store.load(workflow_id)
            if wf.status in ("completed", "failed", "cancelled", "paused"):
                return wf
            step_id = self._next(wf)
            if step_id is None:
                return wf
            self._run_step(wf, step_id)

    @staticmethod
    def _next(wf: Workflow) -> str | None:
        for s in wf.steps:
            if s.status == "pending" and wf.deps_done(s):
                return s.id
            if s.status == "failed" and not s.exhausted:
                return s.id
        return None

    def _run_step(self, wf: Workflow, step_id: str) -> None:
        wf = self.store.apply(wf.id, ops.op_step(step_id, "running", at=now_iso()))
        ctx = StepContext(self, wf, step_id)
        try:
            output = self._call(self.handlers[step_id], ctx, wf.step(step_id).timeout)
        except Exception as exc:  # the step's failure is data, recorded durably
            msg = f"{type(exc).__name__}: {exc}"
            self.store.apply(wf.id, ops.op_step(step_id, "failed", error=msg, at=now_iso()))
            return
        self.store.apply(wf.id, ops.op_step(step_id, "completed", output=output, at=now_iso()))

    @staticmethod
    def _call(fn: Handler, ctx: StepContext, timeout: float | None) -> Any:
        if not timeout:
            return fn(ctx)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn(ctx)
            except BaseException as exc:  # handed back to the caller's thread
                box["error"] = exc

        t = threading.Thread(target=target, daemon=True, name=f"step-{ctx.step_id}")
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise StepTimeout(f"step {ctx.step_id} timed out after {timeout:g}s")
        if "error" in box:
            raise box["error"]
        return box.get("value")
