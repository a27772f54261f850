"""`claude-state verify` names every damaged file of a state directory (issue #2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claude_state.clock import now_iso
from claude_state.domain import ops
from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.store import WorkflowStore
from claude_state.storage import journal, wal
from claude_state.storage.blobs import BlobStore
from claude_state.storage.layout import StateDir


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_state", "--state-dir", str(state), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def build(root: Path) -> dict[str, str]:
    """A state dir holding one file of every kind; returns kind -> path."""
    sd = StateDir(root).ensure()
    store = WorkflowStore(sd)
    store.create(parse_definition({"id": "w", "steps": [{"id": "a"}, {"id": "b"}]}))
    store.apply("w", ops.op_step("a", "running", at=now_iso()))
    store.apply("w", ops.op_step("a", "completed", output="x" * 200_000, at=now_iso()))
    cps = CheckpointStore(sd, store)
    cp = cps.create("w", "manual")
    journal.append(sd, "s1", [journal.wrap(b'{"session_id":"s1","hook_event_name":"Stop"}')])
    blob = next(iter(BlobStore(sd)))
    return {
        "snapshot": sd.workflow_state("w"),
        "wal": sd.workflow_wal("w"),
        "checkpoint": sd.checkpoint("w", cp["id"]),
        "journal": sd.session_wal("s1"),
        "blob": sd.blob(blob),
    }


def flip(path: str, offset: int) -> None:
    data = bytearray(Path(path).read_bytes())
    data[offset % len(data)] ^= 0x10
    Path(path).write_bytes(bytes(data))


def test_clean_state_verifies(tmp_path: Path) -> None:
    build(tmp_path / "s")
    r = cli(tmp_path / "s", "verify")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == [] and doc["checked"] >= 5


@pytest.mark.parametrize("kind", ["snapshot", "checkpoint", "blob"])
def test_a_damaged_frame_is_named(tmp_path: Path, kind: str) -> None:
    files = build(tmp_path / "s")
    flip(files[kind], 60)  # inside the payload
    r = cli(tmp_path / "s", "verify")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert files[kind] in {p["path"] for p in doc["problems"]}


@pytest.mark.parametrize("kind", ["wal", "journal"])
def test_damage_before_a_wal_tail_is_named(tmp_path: Path, kind: str) -> None:
    files = build(tmp_path / "s")
    if kind == "journal":  # a second record, so the first is not the tail
        sd = StateDir(tmp_path / "s")
        journal.append(sd, "s1", [journal.wrap(b'{"session_id":"s1","hook_event_name":"Stop"}')])
    flip(files[kind], 40 + 14)  # first record's payload
    r = cli(tmp_path / "s", "verify")
    assert r.returncode == 1
    assert files[kind] in {p["path"] for p in json.loads(r.stdout)["problems"]}


def test_every_damaged_file_is_named_at_once(tmp_path: Path) -> None:
    files = build(tmp_path / "s")
    for kind in ("snapshot", "checkpoint", "blob"):
        flip(files[kind], 60)
    r = cli(tmp_path / "s", "verify")
    named = {p["path"] for p in json.loads(r.stdout)["problems"]}
    assert {files["snapshot"], files["checkpoint"], files["blob"]} <= named


def test_a_torn_wal_tail_is_not_damage_and_repair_cuts_it(tmp_path: Path) -> None:
    files = build(tmp_path / "s")
    end = wal.read(files["wal"]).valid_end
    assert os.path.getsize(files["wal"]) > end  # a workflow WAL keeps zero-filled room
    with open(files["wal"], "r+b") as f:  # where a killed append leaves its bytes
        f.seek(end)
        f.write(b"\x10\x00\x00\x00partial")
    assert wal.read(files["wal"]).torn
    r = cli(tmp_path / "s", "verify")
    assert r.returncode == 0, r.stdout
    r = cli(tmp_path / "s", "verify", "--repair")
    assert r.returncode == 0
    assert os.path.getsize(files["wal"]) == end  # cut at the last record (room too)
    assert not wal.read(files["wal"]).torn


def test_repair_rebuilds_a_compacted_snapshot_and_quarantines_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "s"
    files = build(root)
    sd = StateDir(root)
    store = WorkflowStore(sd, compact_bytes=1)  # every append compacts: .prev exists
    store.apply("w", ops.op_set_data("k", 1, now_iso()))
    store.apply("w", ops.op_set_data("k", 2, now_iso()))
    before = WorkflowStore(sd).load("w").to_dict()
    flip(files["snapshot"], 60)
    flip(files["blob"], 60)
    r = cli(root, "verify", "--repair")
    doc = json.loads(r.stdout)
    actions = " ".join(x["action"] for x in doc["repaired"])
    assert "rebuilt" in actions and "quarantined" in actions
    assert WorkflowStore(sd).load("w").to_dict() == before
    assert (root / "quarantine").is_dir()
    assert not os.path.exists(files["blob"])


def test_an_unknown_file_is_reported(tmp_path: Path) -> None:
    build(tmp_path / "s")
    (tmp_path / "s" / "workflows" / "stray.txt").write_text("?")
    r = cli(tmp_path / "s", "verify")
    assert r.returncode == 1
    assert any(p["kind"] == "unknown" for p in json.loads(r.stdout)["problems"])


def test_no_state_dir_is_ok(tmp_path: Path) -> None:
    r = cli(tmp_path / "nothing", "verify")
    assert r.returncode == 0 and json.loads(r.stdout)["checked"] == 0
    assert not (tmp_path / "nothing").exists()
