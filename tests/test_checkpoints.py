"""CheckpointStore: full/incremental chains, restore, damage fallback, verify, gc, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.ops import op_owner, op_set_data, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.domain.workflows import rollback
from claude_state.errors import IntegrityError, InvalidInputError, NotFoundError
from claude_state.storage import frame
from claude_state.storage.layout import StateDir

T = "2026-01-01T00:00:00.000Z"


def setup(
    tmp_path: Path, n_steps: int = 30, full_every: int = 10
) -> tuple[StateDir, WorkflowStore, CheckpointStore]:
    state = StateDir(tmp_path / "state").ensure()
    store = WorkflowStore(state)
    steps = [{"id": f"s{i}", "deps": [f"s{i - 1}"] if i else []} for i in range(n_steps)]
    store.create(parse_definition({"id": "w", "steps": steps}, at=T))
    return state, store, CheckpointStore(state, store, full_every=full_every)


def advance(store: WorkflowStore, i: int, output: object = None) -> None:
    store.apply_many(
        "w",
        [
            op_step(f"s{i}", "running", at=T),
            op_step(f"s{i}", "completed", output=output or f"out{i}", at=T),
        ],
    )


def damage(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[-2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def body(state: StateDir, cid: str) -> dict[str, object]:
    _h, b = frame.decode_doc(Path(state.checkpoint("w", cid)).read_bytes())
    assert isinstance(b, dict)
    return b


def test_every_nth_is_full_and_restore_reads_a_bounded_chain(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path, full_every=4)
    made = []
    for i in range(10):
        advance(store, i)
        made.append(cps.create("w", type="post_step", tags=("t", "t"), description=f"#{i}"))
    assert [c["incremental"] for c in made] == [False, True, True, True] * 2 + [False, True]
    assert made[1]["parent"] == made[0]["id"] and made[4]["parent"] is None
    assert made[0]["tags"] == ["t"]
    assert [c["id"] for c in cps.list("w")] == [c["id"] for c in made]  # id order = time
    for c in made:
        assert len(cps.show(c["id"])["chain"]) <= 4
    # every checkpoint materialises to the state it froze, also from a cold store
    cold = CheckpointStore(state, WorkflowStore(state), full_every=4)
    for i, c in enumerate(made):
        wf, warnings = cold.materialize(c["id"])
        assert warnings == [] and wf.progress == round(100 * (i + 1) / 30, 1)
        assert wf.step(f"s{i}").output == f"out{i}"


def test_incremental_checkpoint_stores_only_the_change(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path, n_steps=100)
    advance(store, 0, "y" * 30_000)
    full = cps.create("w")
    advance(store, 1, "z" * 30_000)
    inc = cps.create("w")
    assert inc["incremental"]
    full_size = os.path.getsize(state.checkpoint("w", full["id"]))
    inc_raw = len(frame.dumps(body(state, inc["id"])["delta"]))
    assert inc_raw < 32_000 < len(frame.dumps(body(state, full["id"])["doc"]))
    assert full_size > 0


def test_checkpoint_ids_sort_in_creation_order_within_one_millisecond(tmp_path: Path) -> None:
    _state, _store, cps = setup(tmp_path)
    ids = [cps.create("w")["id"] for _ in range(30)]
    assert ids == sorted(ids) and len(set(ids)) == 30


def test_create_refusals(tmp_path: Path) -> None:
    _state, store, cps = setup(tmp_path)
    with pytest.raises(NotFoundError):
        cps.create("ghost")
    with pytest.raises(InvalidInputError):
        cps.create("w", type="nope")
    with pytest.raises(InvalidInputError):
        cps.create("w", tags=["a\nb"])
    with pytest.raises(InvalidInputError):
        cps.create("../x")
    with pytest.raises(NotFoundError):
        cps.find("cp-nothing")
    with pytest.raises(InvalidInputError):
        cps.find("../../x")
    with pytest.raises(InvalidInputError):
        cps.create("w", wf=parse_definition({"id": "other", "steps": [{"id": "a"}]}))


def test_restore_keeps_owner_epoch_and_moves_revision_forward(tmp_path: Path) -> None:
    _state, store, cps = setup(tmp_path)
    advance(store, 0)
    cp = cps.create("w")
    store.apply("w", op_owner("sess-1", 1, T))
    advance(store, 1)
    store.apply("w", op_owner("sess-2", 5, T))
    rev_before = store.load("w").revision
    res = cps.restore(cp["id"])
    assert res == {
        "workflow_id": "w",
        "checkpoint_id": cp["id"],
        "restored_from": cp["id"],
        "warnings": [],
    }
    wf = store.load("w")
    assert wf.owner == {"session_id": "sess-2", "epoch": 5}
    assert wf.revision > rev_before
    assert wf.step("s1").status == "pending" and wf.step("s0").status == "completed"
    assert wf.history[-1]["event"] == "restore" and wf.history[-1]["detail"] == cp["id"]
    # idempotent
    cps.restore(cp["id"])
    assert store.load("w").step("s1").status == "pending"
    # a restore brings back a deleted or damaged workflow too
    store.delete("w")
    cps.restore(cp["id"])
    assert store.load("w").step("s0").status == "completed"


def test_damaged_link_falls_back_to_last_good_checkpoint(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path)
    ids = []
    for i in range(6):
        advance(store, i)
        ids.append(cps.create("w")["id"])
    damage(state.checkpoint("w", ids[3]))
    cold = CheckpointStore(state, WorkflowStore(state))
    wf, warnings = cold.materialize(ids[5])
    assert wf.progress == round(100 * 3 / 30, 1)  # the state of ids[2]
    assert warnings[0].startswith(f"checkpoint {ids[5]} is damaged; restored {ids[2]} instead")
    res = cold.restore(ids[5])
    assert res["restored_from"] == ids[2] and res["warnings"] == warnings
    # the damaged one itself
    assert cold.restore(ids[3])["restored_from"] == ids[2]
    # intact ones before it are untouched
    assert cold.materialize(ids[1])[1] == []
    # nothing intact at or before: an integrity error (exit 1)
    damage(state.checkpoint("w", ids[0]))
    with pytest.raises(IntegrityError):
        CheckpointStore(state, WorkflowStore(state)).restore(ids[2])


def test_a_new_checkpoint_after_a_damaged_head_starts_a_full_chain(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path)
    advance(store, 0)
    first = cps.create("w")
    damage(state.checkpoint("w", first["id"]))
    advance(store, 1)
    nxt = CheckpointStore(state, store).create("w")
    assert nxt["incremental"] is False
    assert CheckpointStore(state, store).materialize(nxt["id"])[1] == []


def test_verify_reports_damage_missing_parents_and_blobs(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path)
    advance(store, 0, {"big": "q" * 100_000})  # a blob
    c0 = cps.create("w")
    advance(store, 1)
    c1 = cps.create("w")
    advance(store, 2)
    c2 = cps.create("w")
    assert cps.verify() == [] and cps.verify("w") == []
    assert body(state, c0["id"])["blobs"]
    blob = str(body(state, c0["id"])["blobs"][0])  # type: ignore[index]
    os.unlink(state.blob(blob))
    os.unlink(state.checkpoint("w", c1["id"]))
    problems = CheckpointStore(state, store).verify()
    kinds = {(Path(p["path"]).stem, p["kind"]) for p in problems}
    assert (c0["id"], "missing_blob") in kinds
    assert (c2["id"], "missing_parent") in kinds
    sug = CheckpointStore(state, store).suggest("w")
    assert sug["recommended"] is None and len(sug["warnings"]) == 2
    with pytest.raises(NotFoundError):  # unknown workflow: exit 3, as documented
        CheckpointStore(state, store).suggest("ghost")


def test_delete_rewrites_dependents_as_full(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path)
    ids = []
    for i in range(4):
        advance(store, i)
        ids.append(cps.create("w")["id"])
    assert cps.delete(ids[1])
    assert body(state, ids[2])["incremental"] is False
    for cid in (ids[0], ids[2], ids[3]):
        wf, warnings = CheckpointStore(state, store).materialize(cid)
        assert warnings == []
    assert CheckpointStore(state, store).materialize(ids[3])[0].progress == round(400 / 30, 1)
    with pytest.raises(NotFoundError):
        cps.delete(ids[1])


def test_gc_keeps_what_kept_checkpoints_need(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path, full_every=5)
    ids = []
    for i in range(12):
        advance(store, i)
        ids.append(cps.create("w")["id"])
    # fulls at 0, 5, 10. keep 3 -> 9, 10, 11; 9 needs 5..8.
    dry = cps.gc(keep=3, dry_run=True)
    assert dry["checkpoints_removed"] == ids[0:5] and dry["dry_run"]
    assert len(cps.ids("w")) == 12
    rep = cps.gc(keep=3)
    assert rep["checkpoints_removed"] == ids[0:5] and rep["bytes_freed"] > 0
    assert cps.ids("w") == ids[5:]
    assert CheckpointStore(state, store).verify() == []
    # older-than: nothing is that old yet
    assert cps.gc(older_than_seconds=3600)["checkpoints_removed"] == []
    assert cps.gc()["checkpoints_removed"] == []
    rep = cps.gc(keep=0, older_than_seconds=0)
    assert rep["checkpoints_removed"] == ids[5:] and cps.ids("w") == []


def test_rollback_service(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path)
    advance(store, 0)
    cp = cps.create("w")
    advance(store, 1)
    advance(store, 2)
    out = rollback(store, cps, "w", steps=2)
    assert out["rolled_back"] == ["s2", "s1"] and out["current_step"] == "s1"
    advance(store, 1)
    out = rollback(store, cps, "w", to=cp["id"])
    assert out["restored_from"] == cp["id"] and out["progress"] == round(100 / 30, 1)
    with pytest.raises(InvalidInputError):
        rollback(store, cps, "w")
    with pytest.raises(InvalidInputError):
        rollback(store, cps, "w", steps=1, to=cp["id"])


def test_checkpoints_of_two_processes_interleave_safely(tmp_path: Path) -> None:
    """A second store (another process) creating checkpoints invalidates the first's head
    cache by id: each delta is against the newest checkpoint on disk."""
    state, store, cps = setup(tmp_path)
    other = CheckpointStore(state, WorkflowStore(state))
    ids = []
    for i in range(8):
        advance(store, i)
        ids.append((cps if i % 2 else other).create("w")["id"])
    store.apply("w", op_set_data("k", 1, T))
    ids.append(cps.create("w")["id"])
    cold = CheckpointStore(state, WorkflowStore(state))
    assert cold.verify() == []
    for i, cid in enumerate(ids[:8]):
        assert cold.materialize(cid)[0].step(f"s{i}").status == "completed"
    assert cold.materialize(ids[8])[0].data == {"k": 1}


# -- kill -9 during restore -------------------------------------------------------------

#: Kills of a process restoring checkpoints in a loop (CLAUDE_STATE_RESTORE_KILLS).
RESTORE_KILLS = int(os.environ.get("CLAUDE_STATE_RESTORE_KILLS", "40"))

_CHILD = r"""
import sys
from claude_state.storage.layout import StateDir
from claude_state.domain.store import WorkflowStore
from claude_state.domain.checkpoints import CheckpointStore
state = StateDir(sys.argv[1])
store = WorkflowStore(state)
cps = CheckpointStore(state, store)
a, b = sys.argv[2], sys.argv[3]
print("ready", flush=True)
while True:
    cps.restore(a)
    cps.restore(b)
"""


@pytest.mark.slow
def test_kill_9_during_restore_leaves_old_or_restored_state(tmp_path: Path) -> None:
    state, store, cps = setup(tmp_path, n_steps=200)
    for i in range(60):
        advance(store, i, {"text": f"step {i} " * 200})
    a = cps.create("w")["id"]
    for i in range(60, 120):
        advance(store, i, {"text": f"step {i} " * 200})
    b = cps.create("w")["id"]
    allowed = {round(100 * 60 / 200, 1), round(100 * 120 / 200, 1)}
    rng = __import__("random").Random(7)
    seen = set()
    for _ in range(RESTORE_KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, state.root, a, b], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, "the child died on its own"
        child.stdout.close()
        wf = WorkflowStore(state).load("w")  # must load: no torn file, no lost generation
        assert wf.progress in allowed
        seen.add(wf.progress)
        done = sum(1 for s in wf.steps if s.status == "completed")
        assert all(s.status == "completed" for s in wf.steps[:done])
        assert WorkflowStore(state).verify("w") == []
    assert seen == allowed  # the kills landed on both sides of a restore's commit
    state.ensure()  # sweeps the temp files the killed writers left
    assert os.listdir(state.temp) == []


def test_restore_never_moves_the_owner_epoch_back(tmp_path: Path) -> None:
    """A checkpoint taken at epoch 1, a recovery that fenced the workflow at epoch 2
    (through another store object), then a restore: the owner stays at epoch 2. (The
    store reads the owner under the same writer lock as the write, so a recovery cannot
    slip in between; that interleaving is not reproduced here.)"""
    state = StateDir(tmp_path / "s").ensure()
    store = WorkflowStore(state)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}]}))
    store.apply("w", op_owner("sess1", 1, T))
    cps = CheckpointStore(state, store)
    cid = cps.create("w")["id"]
    stale = CheckpointStore(state, WorkflowStore(state))
    stale.workflows.load("w")  # this process last saw epoch 1
    WorkflowStore(state).apply("w", op_owner("sess2", 2, T))  # a recovery elsewhere
    stale.restore(cid)
    wf = WorkflowStore(state).load("w")
    assert wf.owner == {"session_id": "sess2", "epoch": 2}


def test_blob_refs_are_found_in_the_serialised_document() -> None:
    """Checkpoints list their blobs by scanning the JSON bytes, not walking the tree:
    every reference is found, a lookalike inside a string is not."""
    import orjson

    from claude_state.domain.checkpoints import blob_refs_in
    from claude_state.storage.blobs import collect_refs

    a, b = "0" * 32, "f" * 32
    doc = {
        "steps": [{"output": {"$blob": a, "size": 1}}, {"output": [{"$blob": b, "size": 2}]}],
        "data": {"note": 'text mentioning "$blob":"' + "1" * 32 + '"'},
    }
    data = orjson.dumps(doc)
    assert blob_refs_in(data) == sorted(collect_refs(doc)) == [a, b]


def test_chain_head_is_not_changed_by_later_in_place_updates(tmp_path: Path) -> None:
    """The newest checkpoint's document is kept in memory without a deep copy. Ops that
    change containers in place (history, metrics, tool calls, data) must not leak into
    it, or the next delta would miss them: every checkpoint, rebuilt from disk by a
    fresh store, equals the workflow as it was when it was taken."""
    from claude_state.domain.model import Workflow
    from claude_state.domain.ops import apply_op, op_tool_call

    state = StateDir(tmp_path / "s").ensure()
    store = WorkflowStore(state)
    wf = store.create(parse_definition({"id": "w", "steps": [{"id": "a"}, {"id": "b"}]}))
    cps = CheckpointStore(state, store, full_every=5)
    expected: dict[str, dict[str, object]] = {}
    script = [
        op_step("a", "running", at=T),
        op_tool_call("a", {"tool": "Bash", "n": 1}, T),
        op_set_data("k", {"nested": [1, 2]}, T),
        op_tool_call("a", {"tool": "Edit", "n": 2}, T),
        op_step("a", "completed", output={"ok": True}, at=T),
        op_set_data("k", {"nested": [3]}, T),
        op_step("b", "running", at=T),
    ]
    for op in script:
        apply_op(wf, op)
        cid = cps.create("w", wf=wf)["id"]
        expected[cid] = Workflow.from_dict(wf.to_dict()).to_dict()
    fresh = CheckpointStore(state, WorkflowStore(state))
    for cid, doc in expected.items():
        got, warnings = fresh.materialize(cid)
        assert warnings == [] and got.to_dict() == doc, cid
