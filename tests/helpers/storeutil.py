"""Shared helpers for the persistence-core tests (no pytest fixtures: plain functions)."""

from __future__ import annotations

import os
from typing import Any

from claude_state.domain.definition import parse_definition
from claude_state.domain.model import Workflow
from claude_state.domain.store import WorkflowStore
from claude_state.storage import frame, wal
from claude_state.storage.layout import StateDir

T0 = "2025-01-01T00:00:00.000Z"


def make_workflow(
    wid: str = "wf1", n_steps: int = 3, data: dict[str, Any] | None = None
) -> Workflow:
    steps: list[dict[str, Any]] = [{"id": f"s{i}"} for i in range(n_steps)]
    for i in range(1, n_steps):
        steps[i]["deps"] = [f"s{i - 1}"]
    return parse_definition({"id": wid, "steps": steps, "data": data or {}}, at=T0)


def new_store(root: str | os.PathLike[str], **kw: Any) -> tuple[StateDir, WorkflowStore]:
    state = StateDir(root).ensure()
    return state, WorkflowStore(state, **kw)


def doc(wf: Workflow) -> dict[str, Any]:
    return wf.to_dict()


def check_files_decode(state: StateDir) -> list[str]:
    """Every framed file and WAL under *state* verifies; returns the problems found."""
    problems: list[str] = []
    for base, _dirs, files in os.walk(state.root):
        for name in files:
            path = os.path.join(base, name)
            if name.endswith(".lock") or name == ".gitignore":  # not framed: plain text
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
                if name.endswith((".wal", ".wal.prev")):
                    wal.parse(data, path)
                elif name.endswith(".tmp"):
                    continue
                else:
                    frame.decode(data, None, path)
            except Exception as exc:  # noqa: BLE001 - collected and reported
                problems.append(f"{path}: {exc!r}")
    return problems


def temp_files(state: StateDir) -> list[str]:
    try:
        return sorted(os.listdir(state.temp))
    except FileNotFoundError:
        return []
