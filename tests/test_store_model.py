"""A stateful model of workflow + log + checkpoints, with crashes and torn writes.

The model is the pure domain: an in-memory :class:`Workflow` changed only by
:func:`apply_op`. The system under test is the durable store (snapshot + WAL +
compaction + blobs) and the checkpoint store. Hypothesis drives random operations,
including "crash and reopen" (every object dropped, a cold reader) and "a writer was
killed mid-append" (a torn record left at the WAL's tail). After every step, a cold
load must equal the model; a refused op must be refused by both with nothing written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from claude_state.domain import ops
from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.model import Workflow
from claude_state.domain.ops import apply_op
from claude_state.domain.store import WorkflowStore
from claude_state.errors import ClaudeStateError
from claude_state.storage import wal
from claude_state.storage.layout import StateDir

WID = "wf"
STEPS = ["a", "b", "c", "d"]
DEFINITION = {
    "id": WID,
    "steps": [
        {"id": "a", "max_retries": 1},
        {"id": "b", "deps": ["a"]},
        {"id": "c", "deps": ["a"]},
        {"id": "d", "deps": ["b", "c"]},
    ],
}
T = "2026-01-01T00:00:00.000Z"

values = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**31),
    st.text(max_size=20),
    st.text(alphabet="xyz\n", min_size=300, max_size=900),  # over the blob threshold
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def project(wf: Workflow, store: WorkflowStore) -> dict[str, Any]:
    """What must agree: status, steps and data, with blob references resolved."""
    return {
        "status": wf.status,
        "steps": [(s.id, s.status, s.attempts, store.resolve(s.output), s.error) for s in wf.steps],
        "data": {k: store.resolve(v) for k, v in wf.data.items()},
        "finish_order": list(wf.finish_order),
    }


def project_model(wf: Workflow) -> dict[str, Any]:
    return {
        "status": wf.status,
        "steps": [(s.id, s.status, s.attempts, s.output, s.error) for s in wf.steps],
        "data": dict(wf.data),
        "finish_order": list(wf.finish_order),
    }


class StoreMachine(RuleBasedStateMachine):
    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="store-model-")
        self._fsync = os.environ.get("CLAUDE_STATE_FSYNC")
        os.environ["CLAUDE_STATE_FSYNC"] = "0"  # logic under test, not the disk
        self.state = StateDir(self.tmp).ensure()
        self.model = parse_definition(DEFINITION, at=T)
        self.saved: dict[str, dict[str, Any]] = {}
        self.reopen()

    def teardown(self) -> None:
        if self._fsync is None:
            os.environ.pop("CLAUDE_STATE_FSYNC", None)
        else:
            os.environ["CLAUDE_STATE_FSYNC"] = self._fsync
        shutil.rmtree(self.tmp, ignore_errors=True)

    def reopen(self) -> None:
        # small thresholds: compaction and blobs happen within a few operations
        self.store = WorkflowStore(self.state, compact_bytes=1500, blob_threshold=256)
        self.cps = CheckpointStore(self.state, self.store, full_every=3)

    @initialize()
    def create(self) -> None:
        self.store.create(parse_definition(DEFINITION, at=T))

    def _both(self, *group: dict[str, Any]) -> None:
        """Apply the ops to the model and the store (one op, or a group through
        apply_many): both accept them all, or both refuse and change nothing."""
        expected: type[BaseException] | None = None
        trial = Workflow.from_dict(self.model.to_dict())
        try:
            for op in group:
                apply_op(trial, op)
        except ClaudeStateError as exc:
            expected = type(exc)
        try:
            if len(group) == 1:
                self.store.apply(WID, group[0])
            else:
                self.store.apply_many(WID, list(group))
        except ClaudeStateError as exc:
            assert expected is not None, f"store refused {group}: {exc!r}"
            assert isinstance(exc, expected), (exc, expected)
            return
        assert expected is None, f"store accepted {group}, the model refused it ({expected})"
        self.model = trial

    @rule(
        step=st.sampled_from(STEPS),
        status=st.sampled_from(["pending", "running", "completed", "failed", "skipped"]),
        output=values,
    )
    def step(self, step: str, status: str, output: Any) -> None:
        if status == "completed":
            self._both(ops.op_step(step, status, output=output, at=T))
        elif status == "failed":
            self._both(ops.op_step(step, status, error="boom", at=T))
        else:
            self._both(ops.op_step(step, status, at=T))

    @rule(key=st.sampled_from(["k1", "k2", "k3"]), value=values)
    def set_data(self, key: str, value: Any) -> None:
        self._both(ops.op_set_data(key, value, T))

    @rule(
        key=st.sampled_from(["k1", "k2"]),
        value=values,
        step=st.sampled_from(STEPS),
        status=st.sampled_from(["running", "completed", "skipped"]),
    )
    def group(self, key: str, value: Any, step: str, status: str) -> None:
        """Two ops through apply_many: one WAL record, applied all or none."""
        self._both(ops.op_set_data(key, value, T), ops.op_step(step, status, at=T))

    @rule(n=st.integers(1, 3))
    def rollback(self, n: int) -> None:
        self._both(ops.op_rollback_steps(n, T))

    @rule(kind=st.sampled_from(["pause", "resume"]))
    def pause_resume(self, kind: str) -> None:
        self._both(ops.op_pause(T) if kind == "pause" else ops.op_resume(T))

    @rule(target=checkpoints)
    def checkpoint(self) -> str:
        cid = str(self.cps.create(WID, "manual")["id"])
        self.saved[cid] = Workflow.from_dict(self.model.to_dict()).to_dict()
        return cid

    @rule(cid=checkpoints)
    def restore(self, cid: str) -> None:
        self.cps.restore(cid)
        restored = Workflow.from_dict(self.saved[cid])
        restored.owner = self.model.owner  # restore keeps the current owner (fencing)
        self.model = restored

    @rule()
    def crash_and_reopen(self) -> None:
        """The process dies: nothing survives but the files."""
        self.reopen()
        self.state.ensure()  # a new process sweeps orphaned temp files

    @precondition(lambda self: os.path.exists(self.state.workflow_wal(WID)))
    @rule(frac=st.floats(0.05, 0.95))
    def writer_killed_mid_append(self, frac: float) -> None:
        """A torn record at the WAL's tail, never acknowledged: invisible, then cut."""
        path = self.state.workflow_wal(WID)
        with open(path, "rb") as f:
            header = wal.parse_header(f.read(wal.FILE_HEAD_SIZE), path)
        op = b'{"v":1,"op":"pause","at":"' + T.encode() + b'"}'
        rec = wal.encode_record(header.salt, 10**9, op)
        with open(path, "ab") as f:
            f.write(rec[: max(1, int(len(rec) * frac))])
        self.reopen()

    @invariant()
    def cold_load_matches_the_model(self) -> None:
        cold = WorkflowStore(self.state)
        assert project(cold.load(WID), cold) == project_model(self.model)

    @invariant()
    def every_file_verifies(self) -> None:
        assert self.store.verify(WID) == []


TestStoreModel = StoreMachine.TestCase
TestStoreModel.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_control_a_replay_that_drops_records_is_caught(monkeypatch: Any) -> None:
    """Control: the same machine, with a store whose replay drops every other record
    it reads, fails."""
    import pytest
    from hypothesis.stateful import run_state_machine_as_test

    from claude_state.domain import store as store_mod

    real = store_mod._replay
    calls: dict[str, int] = {}  # per WAL path: each example has its own directory

    def dropping(wf: Workflow, payload: bytes, path: str) -> None:
        calls[path] = calls.get(path, 0) + 1
        if calls[path] % 2:
            real(wf, payload, path)

    monkeypatch.setattr(store_mod, "_replay", dropping)
    # Either the cold-load invariant fails, or a writer that replayed a partial log
    # refuses an op the model accepts: both are the loss being caught.
    with pytest.raises((AssertionError, ClaudeStateError)):
        run_state_machine_as_test(
            StoreMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=30,
                deadline=None,
                database=None,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
            ),
        )
