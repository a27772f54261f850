"""The attacks of issue 15 (integrity part), played end to end through the real CLI.

Every attack runs the installed ``claude-state`` program in a subprocess against a real
state directory, as a hostile user or a damaged disk would, and checks that it is
refused or survived with nothing lost and the damage named:

* user values shaped like blob references (a real digest, a bogus one);
* a session fenced off by a recovery that keeps writing; an old lease put back;
* one flipped bit in a crashed session's lease, record or journal;
* forged bundles (checksums recomputed) and a zip bomb;
* damaged checkpoints in ``list``/``show``; ``suggest`` of an unknown workflow.

The focused tests (with their controls) are in test_userdata_roundtrip.py,
test_fencing_cli.py, test_damage_named.py, test_bundle_forgery.py and
test_checkpoint_damage_named.py; ``docs/reliability.md`` tabulates the results.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from typing import Any

import orjson
import pytest
from _session_helpers import SID, kill9, start_agent

from claude_state.storage import frame
from claude_state.storage.blobs import digest
from claude_state.storage.layout import StateDir

EXE = os.path.join(os.path.dirname(sys.executable), "claude-state")
WID = "retry-work"
NEW_SID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def run(
    state: StateDir, *args: str, sid: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env.update(CLAUDE_STATE_FSYNC="0", CLAUDE_STATE_DIR=state.root)
    if sid is not None:
        env["CLAUDE_CODE_SESSION_ID"] = sid
    return subprocess.run(
        [EXE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


def ok(state: StateDir, *args: str, sid: str | None = None) -> Any:
    r = run(state, "--json", *args, sid=sid)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return orjson.loads(r.stdout)


def tree(root: str) -> dict[str, Any]:
    """Every path under *root* with its kind, mode and bytes (lock files included)."""
    out: dict[str, Any] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, root)] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                data,
            )
    return out


def flip(path: str, from_end: int = 3, at: int | None = None) -> None:
    with open(path, "r+b") as f:
        pos = f.seek(0, 2) - from_end if at is None else at
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x10]))


@pytest.fixture
def state(tmp_path: Any) -> StateDir:
    return StateDir(str(tmp_path / "state")).ensure()


def _workflow(state: StateDir, wid: str = "wf", steps: int = 3) -> None:
    d = {"id": wid, "steps": [{"id": f"s{i}"} for i in range(steps)]}
    r = run(state, "workflow", "create", "-", stdin=json.dumps(d))
    assert r.returncode == 0, r.stderr


# -- 1. values shaped like blob references --------------------------------------------------


def test_reference_shaped_outputs_come_back_exactly(state: StateDir) -> None:
    _workflow(state)
    big = "x" * 80_000  # stored as a blob: its digest is one a user could name
    ok(state, "workflow", "step", "wf", "s0", "--status", "completed", "--output", json.dumps(big))
    h = digest(frame.dumps(big))
    assert os.path.exists(state.blob(h))
    forged = {"$blob": h, "size": 3}
    bogus = {"$blob": "x"}
    nested = {"a": [{"$esc": {"$blob": h}}], "$ref": 1}
    for step, value in (("s1", forged), ("s2", bogus)):
        ok(
            state,
            "workflow",
            "step",
            "wf",
            step,
            "--status",
            "completed",
            "--output",
            json.dumps(value),
        )
    ok(state, "workflow", "data", "wf", "k", json.dumps(nested))
    shown = ok(state, "workflow", "show", "wf", "--outputs")
    assert shown["outputs"] == {"s0": big, "s1": forged, "s2": bogus}
    assert ok(state, "workflow", "data", "wf", "k")["value"] == nested
    # through a checkpoint and its restore
    cp = ok(state, "checkpoint", "create", "wf")["id"]
    ok(state, "workflow", "data", "wf", "k", "0")
    ok(state, "checkpoint", "restore", cp)
    assert ok(state, "workflow", "data", "wf", "k")["value"] == nested
    assert ok(state, "workflow", "show", "wf", "--outputs")["outputs"]["s1"] == forged
    assert run(state, "verify").returncode == 0
    r = run(state, "workflow", "data", "wf", "$blob", json.dumps(h))
    assert r.returncode == 2 and "reserved" in r.stderr


# -- 2. fencing ----------------------------------------------------------------------------


def test_fenced_session_is_refused_and_old_lease_is_named(state: StateDir, tmp_path: Any) -> None:
    kill9(start_agent(state, SID, WID))
    old_lease = str(tmp_path / "old.lease")
    shutil.copy2(state.lease(SID), old_lease)
    ok(state, "recover", SID)
    before = tree(state.root)
    r = run(state, "workflow", "step", WID, "build", "--status", "running", sid=SID)
    assert r.returncode == 4 and "fenced off" in r.stderr
    r = run(state, "workflow", "data", WID, "k", "1", sid=SID)
    assert r.returncode == 4
    assert tree(state.root) == before
    shutil.copy2(old_lease, state.lease(SID))
    r = run(state, "--json", "verify")
    assert r.returncode == 1
    kinds = {p["kind"] for p in orjson.loads(r.stdout)["problems"]}
    assert "stale_lease" in kinds


# -- 3. damage does not hide crashes --------------------------------------------------------


def test_flipped_bit_in_a_crashed_lease_still_shows_the_crash(state: StateDir) -> None:
    kill9(start_agent(state, SID, WID))
    flip(state.lease(SID))
    st = ok(state, "status")
    assert st["sessions"]["crashed"] == 1 and st["damaged"][0]["session_id"] == SID
    assert ok(state, "sessions", "list")[0]["status"] == "crashed"
    [plan] = ok(state, "recover", "--dry-run")["plans"]
    assert "damaged_lease" in plan["estimated_data_loss"]
    ev = {
        "session_id": NEW_SID,
        "transcript_path": "/tmp/t.jsonl",
        "cwd": "/tmp",
        "hook_event_name": "SessionStart",
        "source": "startup",
    }
    r = run(state, "hook", "SessionStart", stdin=json.dumps(ev))
    assert r.returncode == 0
    context = json.loads(r.stdout)["hookSpecificOutput"]["additionalContext"]
    assert SID in context and "damaged_lease" in context
    [done] = ok(state, "recover")["plans"]
    assert done["applied"] and done["session_id"] == SID
    assert ok(state, "status")["sessions"]["recovered"] == 1


@pytest.mark.parametrize("suffix", [".session", ".wal"])
def test_damaged_record_or_journal_is_not_dropped(state: StateDir, suffix: str) -> None:
    kill9(start_agent(state, SID, WID))
    ok(state, "recover", "--dry-run")
    path = os.path.join(state.sessions, SID + suffix)
    if not os.path.exists(path):  # the record is written by the first fold
        from claude_state.domain.sessions import SessionStore

        SessionStore(state).catch_up(SID)
    # a journal record before the last (a damaged last record is only a torn tail)
    if suffix == ".session":
        flip(path, from_end=2)
    else:
        flip(path, at=200)
    st = ok(state, "status")
    assert sum(st["sessions"].values()) == 1
    [d] = st["damaged"]
    assert d["problems"][0]["path"] == path
    assert ok(state, "sessions", "list")[0]["problems"][0]["path"] == path


# -- 4. forged bundles ----------------------------------------------------------------------


def _forge(src: str, dst: str, mutate: Any) -> None:
    with open(src, "rb") as f:
        _h, doc = frame.decode_doc(f.read(), frame.Kind.BUNDLE)
    mutate(doc)
    with open(dst, "wb") as f:
        f.write(frame.encode_doc(frame.Kind.BUNDLE, doc))  # checksums recomputed


def _dup_workflow(d: dict[str, Any]) -> None:
    d["workflows"].append({**d["workflows"][0], "name": "twin"})


def _misfiled_checkpoint(d: dict[str, Any]) -> None:
    e = d["checkpoints"][0]
    _h, body = frame.decode_doc(base64.b64decode(e["frame"]), frame.Kind.CHECKPOINT)
    body = {**body, "workflow_id": "other", "id": "cp-x"}
    d["workflows"].append({**d["workflows"][0], "id": "other"})
    raw = frame.encode_doc(frame.Kind.CHECKPOINT, body)
    d["checkpoints"].append(
        {"workflow_id": WID, "id": "cp-x", "frame": base64.b64encode(raw).decode()}
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["session"].update(revision="x"),
        _dup_workflow,
        _misfiled_checkpoint,
        lambda d: d.update(lease={**d["lease"], "epoch": -1}),
    ],
    ids=["bad-revision", "duplicate-workflow", "misfiled-checkpoint", "bad-lease-epoch"],
)
def test_forged_bundle_is_refused_with_nothing_written(
    state: StateDir, tmp_path: Any, mutate: Any
) -> None:
    kill9(start_agent(state, SID, WID))
    ok(state, "checkpoint", "create", WID)
    good = str(tmp_path / "good.bundle")
    assert run(state, "sessions", "export", SID, "-o", good).returncode == 0
    bad = str(tmp_path / "bad.bundle")
    _forge(good, bad, mutate)
    dst = StateDir(str(tmp_path / "dst")).ensure()
    _workflow(dst, "mine")  # the target holds data of its own
    before = tree(dst.root)
    r = run(dst, "sessions", "import", bad)
    assert r.returncode == 1 and r.stderr.startswith("claude-state: error: bundle"), r.stderr
    assert tree(dst.root) == before
    assert run(dst, "sessions", "import", good).returncode == 0  # control: the real one


def test_zip_bomb_bundle_is_refused_before_expanding(state: StateDir, tmp_path: Any) -> None:
    import xxhash
    import zstandard

    expanded = 600 << 20
    cobj = zstandard.ZstdCompressor().compressobj(size=expanded)
    head = b'{"format":"claude-state-bundle","version":1,"pad":"'
    parts = [cobj.compress(head)]
    chunk = b"0" * (1 << 20)
    left = expanded - len(head) - 2
    while left:
        parts.append(cobj.compress(chunk[: min(left, len(chunk))]))
        left -= min(left, len(chunk))
    parts += [cobj.compress(b'"}'), cobj.flush()]
    payload = b"".join(parts)
    h40 = frame.HEADER.pack(
        frame.MAGIC, frame.VERSION, int(frame.Kind.BUNDLE), frame.FLAG_ZSTD, 0,
        expanded, len(payload), xxhash.xxh3_64_intdigest(payload),
    )  # fmt: skip
    path = str(tmp_path / "bomb.bundle")
    with open(path, "wb") as f:
        f.write(h40 + frame.HEADER_SUM.pack(xxhash.xxh3_64_intdigest(h40)) + payload)
    assert os.path.getsize(path) < 64 * 1024
    before = tree(state.root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    proc = subprocess.Popen(
        [EXE, "--state-dir", state.root, "sessions", "import", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read().decode()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 1 and "over the limit" in err
    assert usage.ru_maxrss * 1024 < 100 << 20
    assert tree(state.root) == before


# -- 5. damaged checkpoints -----------------------------------------------------------------


def test_damaged_checkpoints_are_named(state: StateDir) -> None:
    _workflow(state)
    ids = []
    for i in range(3):
        ok(state, "workflow", "data", "wf", "k", str(i))
        ids.append(ok(state, "checkpoint", "create", "wf")["id"])
    flip(state.checkpoint("wf", ids[0]))
    listed = ok(state, "checkpoint", "list", "wf")
    assert {c["id"]: c["damaged"] for c in listed} == {ids[0]: True, ids[1]: False, ids[2]: False}
    r = run(state, "checkpoint", "show", ids[2])
    assert r.returncode == 1 and f"ancestor {ids[0]} is damaged" in r.stderr
    assert run(state, "checkpoint", "suggest", "no-such-workflow").returncode == 3
