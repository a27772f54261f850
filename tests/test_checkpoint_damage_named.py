"""Damaged checkpoints are named, never hidden (issue 15, minor findings).

``list`` includes them marked damaged, ``show`` of a checkpoint whose ancestor is
damaged fails naming the ancestor instead of printing a shortened chain, and ``suggest``
for an unknown workflow is "not found".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.ops import op_set_data
from claude_state.domain.store import WorkflowStore
from claude_state.errors import IntegrityError, NotFoundError
from claude_state.storage.layout import StateDir

T = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StateDir, list[str]]:
    """A workflow with a chain full <- inc <- inc."""
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")
    state = StateDir(tmp_path / "state").ensure()
    store = WorkflowStore(state)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}]}, at=T))
    cps = CheckpointStore(state, store)
    ids = []
    for i in range(3):
        store.apply("w", op_set_data("k", i, T))
        ids.append(cps.create("w")["id"])
    return state, ids


def flip(path: str, at: int = 60) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x01]))


def test_list_names_a_damaged_checkpoint(chain: tuple[StateDir, list[str]]) -> None:
    state, ids = chain
    flip(state.checkpoint("w", ids[1]))
    cps = CheckpointStore(state)
    listed = cps.list("w", damaged=True)
    assert [c["id"] for c in listed] == [ids[0], ids[2], ids[1]]
    bad = listed[-1]
    assert bad["damaged"] is True and "checksum" in bad["problem"]
    assert [c["damaged"] for c in listed[:2]] == [False, False]
    # Callers choosing a checkpoint to use still get the readable ones only.
    assert [c["id"] for c in cps.list("w")] == [ids[0], ids[2]]


def test_show_fails_naming_the_damaged_ancestor(chain: tuple[StateDir, list[str]]) -> None:
    state, ids = chain
    cps = CheckpointStore(state)
    assert cps.show(ids[2])["chain"] == ids  # control: intact, the whole chain
    flip(state.checkpoint("w", ids[0]))
    with pytest.raises(IntegrityError, match=f"ancestor {ids[0]} is damaged"):
        CheckpointStore(state).show(ids[2])


def test_show_fails_naming_a_missing_ancestor(chain: tuple[StateDir, list[str]]) -> None:
    import os

    state, ids = chain
    os.unlink(state.checkpoint("w", ids[1]))
    with pytest.raises(IntegrityError, match=f"ancestor {ids[1]} is missing"):
        CheckpointStore(state).show(ids[2])


def test_suggest_unknown_workflow_is_not_found(chain: tuple[StateDir, list[str]]) -> None:
    state, ids = chain
    cps = CheckpointStore(state)
    assert cps.suggest("w")["recommended"] == ids[2]
    with pytest.raises(NotFoundError):
        cps.suggest("ghost")
