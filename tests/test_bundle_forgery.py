"""Forged bundles (checksums recomputed) are refused before the first write (issue 15).

Each forgery is imported into a state directory that already holds data; the directory
must be byte-identical afterwards (every file, its bytes and mode, every directory). A
zip-bomb bundle is imported by a real ``claude-state`` process whose peak memory is
measured.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from _session_helpers import SID, append, ev

from claude_state.clock import now_iso
from claude_state.domain import bundle, ops
from claude_state.domain.checkpoints import CheckpointStore
from claude_state.domain.definition import parse_definition
from claude_state.domain.sessions import SessionStore
from claude_state.domain.store import WorkflowStore
from claude_state.errors import BundleError
from claude_state.storage import frame
from claude_state.storage.layout import StateDir

WID = "wf-forge"
BIG = "forged bundle output line\n" * 4000  # ~100 KB: a blob
VENV_BIN = os.path.dirname(sys.executable)


def tree(root: str) -> dict[str, Any]:
    """Every directory and file under *root*: kind, mode and bytes."""
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            p = os.path.join(dirpath, d)
            out[os.path.relpath(p, root)] = ("dir", stat.S_IMODE(os.lstat(p).st_mode))
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (
                    "file",
                    stat.S_IMODE(os.lstat(p).st_mode),
                    f.read(),
                )
    return out


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_STATE_FSYNC", "0")


@pytest.fixture
def good(tmp_path: Any) -> dict[str, Any]:
    """The document of a real bundle: a session, two workflows, checkpoints and a blob."""
    state = StateDir(str(tmp_path / "src")).ensure()
    append(state, SID, ev("SessionStart", source="startup"), ev("UserPromptSubmit", prompt="hi"))
    SessionStore(state).catch_up(SID)
    wfs = WorkflowStore(state)
    cps = CheckpointStore(state, workflows=wfs)
    for wid in (WID, "wf-other"):
        wfs.create(parse_definition({"id": wid, "steps": [{"id": "a"}]}))
        wfs.apply(wid, ops.op_owner(SID, 1, now_iso()))
        wfs.apply(wid, ops.op_step("a", "running", at=now_iso()))
        cps.create(wid)
        wfs.apply(wid, ops.op_step("a", "completed", output=BIG, at=now_iso()))
        cps.create(wid)  # incremental, on the first
    _h, doc = frame.decode_doc(bundle.export_bytes(state, SID), frame.Kind.BUNDLE)
    assert len(doc["workflows"]) == 2 and len(doc["checkpoints"]) == 4 and doc["blobs"]
    return dict(doc)


@pytest.fixture
def dst(tmp_path: Any) -> StateDir:
    """A state directory with data of its own (an unrelated workflow)."""
    state = StateDir(str(tmp_path / "dst")).ensure()
    wfs = WorkflowStore(state)
    wfs.create(parse_definition({"id": "wf-mine", "steps": [{"id": "x"}]}))
    wfs.apply("wf-mine", ops.op_step("x", "running", at=now_iso()))
    return state


def _cp_body(entry: dict[str, Any]) -> dict[str, Any]:
    _h, body = frame.decode_doc(base64.b64decode(entry["frame"]), frame.Kind.CHECKPOINT)
    return dict(body)


def _cp_frame(body: dict[str, Any]) -> str:
    return base64.b64encode(frame.encode_doc(frame.Kind.CHECKPOINT, body)).decode()


def f_revision_text(d: dict[str, Any]) -> None:
    d["session"]["revision"] = "x"


def f_revision_negative(d: dict[str, Any]) -> None:
    d["session"]["revision"] = -3


def f_lease_epoch_text(d: dict[str, Any]) -> None:
    d["lease"] = {"session_id": SID, "epoch": "7"}


def f_last_activity_text(d: dict[str, Any]) -> None:
    d["session"]["last_activity"] = "yesterday"


def f_duplicate_workflow(d: dict[str, Any]) -> None:
    twin = dict(d["workflows"][0])
    twin["name"] = "a twin with other content"
    d["workflows"].append(twin)


def f_duplicate_workflow_same(d: dict[str, Any]) -> None:
    d["workflows"].append(d["workflows"][0])


def f_duplicate_checkpoint(d: dict[str, Any]) -> None:
    d["checkpoints"].append(d["checkpoints"][0])


def f_checkpoint_wrong_workflow(d: dict[str, Any]) -> None:
    entry = d["checkpoints"][0]
    other = "wf-other" if entry["workflow_id"] == WID else WID
    d["checkpoints"][0] = {**entry, "workflow_id": other, "id": "cp-999999"}


def f_checkpoint_renamed_consistently(d: dict[str, Any]) -> None:
    """Entry and body both say wf-other, but the document is the other workflow's."""
    entry = next(e for e in d["checkpoints"] if not _cp_body(e)["incremental"])
    body = _cp_body(entry)
    other = "wf-other" if entry["workflow_id"] == WID else WID
    body.update(workflow_id=other, id="cp-999999")
    d["checkpoints"].append({"workflow_id": other, "id": "cp-999999", "frame": _cp_frame(body)})


def f_checkpoint_orphan(d: dict[str, Any]) -> None:
    """An incremental checkpoint whose parent is not in the bundle."""
    d["checkpoints"] = [e for e in d["checkpoints"] if _cp_body(e)["incremental"]]


def f_checkpoint_revision_text(d: dict[str, Any]) -> None:
    entry = d["checkpoints"][0]
    body = _cp_body(entry)
    body["revision"] = "x"
    d["checkpoints"][0] = {**entry, "frame": _cp_frame(body)}


def f_delta_not_a_workflow(d: dict[str, Any]) -> None:
    """An incremental checkpoint whose delta replaces the document with garbage."""
    i, entry = next((i, e) for i, e in enumerate(d["checkpoints"]) if _cp_body(e)["incremental"])
    body = _cp_body(entry)
    body["delta"] = {"r": {"not": "a workflow"}}
    d["checkpoints"][i] = {**entry, "frame": _cp_frame(body)}


def f_chain_loop(d: dict[str, Any]) -> None:
    """Two incremental checkpoints, each the other's parent: no full one to start from."""
    inc = [e for e in d["checkpoints"] if _cp_body(e)["incremental"]][0]
    body = _cp_body(inc)
    wid = inc["workflow_id"]
    twin = {**body, "id": "cp-loop-b", "parent": "cp-loop-a"}
    body.update(id="cp-loop-a", parent="cp-loop-b")
    d["checkpoints"] += [
        {"workflow_id": wid, "id": "cp-loop-a", "frame": _cp_frame(body)},
        {"workflow_id": wid, "id": "cp-loop-b", "frame": _cp_frame(twin)},
    ]


def f_blob_missing(d: dict[str, Any]) -> None:
    d["blobs"] = {}


def f_workflow_bad_revision(d: dict[str, Any]) -> None:
    d["workflows"][0] = {**d["workflows"][0], "revision": "x"}


FORGERIES: list[Callable[[dict[str, Any]], None]] = [
    f_revision_text,
    f_revision_negative,
    f_lease_epoch_text,
    f_last_activity_text,
    f_duplicate_workflow,
    f_duplicate_workflow_same,
    f_duplicate_checkpoint,
    f_checkpoint_wrong_workflow,
    f_checkpoint_renamed_consistently,
    f_checkpoint_orphan,
    f_checkpoint_revision_text,
    f_delta_not_a_workflow,
    f_chain_loop,
    f_blob_missing,
    f_workflow_bad_revision,
]


@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__[2:])
def test_forgery_refused_and_nothing_written(
    forge: Callable[[dict[str, Any]], None], good: dict[str, Any], dst: StateDir
) -> None:
    import copy

    doc = copy.deepcopy(good)
    forge(doc)
    data = frame.encode_doc(frame.Kind.BUNDLE, doc)  # checksums recomputed
    before = tree(dst.root)
    with pytest.raises(BundleError):
        bundle.import_bundle(dst, data)
    assert tree(dst.root) == before


def test_the_unforged_bundle_imports(good: dict[str, Any], dst: StateDir) -> None:
    """Control: the same document, not forged, is accepted (the refusals above are the
    forgeries', not the fixture's)."""
    result = bundle.import_bundle(dst, frame.encode_doc(frame.Kind.BUNDLE, good))
    assert result.imported and sorted(result.workflows) == ["wf-forge", "wf-other"]
    assert result.checkpoints == 4


def _bomb(path: str, expanded: int) -> int:
    """Write a bundle frame whose payload is JSON padded with zeros to *expanded* bytes,
    compressed as a stream (this process never holds it expanded). :returns: file size."""
    import xxhash
    import zstandard

    head = b'{"format":"claude-state-bundle","version":1,"pad":"'
    tail = b'"}'
    pad = expanded - len(head) - len(tail)
    cobj = zstandard.ZstdCompressor(level=3).compressobj(size=expanded)
    parts = [cobj.compress(head)]
    chunk = b"0" * (1 << 20)
    left = pad
    while left:
        n = min(left, len(chunk))
        parts.append(cobj.compress(chunk[:n]))
        left -= n
    parts.append(cobj.compress(tail))
    parts.append(cobj.flush())
    payload = b"".join(parts)
    head40 = frame.HEADER.pack(
        frame.MAGIC,
        frame.VERSION,
        int(frame.Kind.BUNDLE),
        frame.FLAG_ZSTD,
        0,
        expanded,
        len(payload),
        xxhash.xxh3_64_intdigest(payload),
    )
    data = head40 + frame.HEADER_SUM.pack(xxhash.xxh3_64_intdigest(head40)) + payload
    frame.decode_header(data[: frame.HEADER_SIZE])  # a valid frame header
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, str, int]:
    """Run *cmd*, reaping it with ``wait4`` for its own peak RSS (bytes)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err.decode(), usage.ru_maxrss * 1024


def test_zip_bomb_refused_with_bounded_memory(tmp_path: Any) -> None:
    """A ~20 KB bundle expanding to 600 MiB: refused with exit 1, the importing process
    stays under 100 MB, the state directory is unchanged."""
    path = str(tmp_path / "bomb.bundle")
    size = _bomb(path, 600 << 20)
    assert size < 64 * 1024
    state = StateDir(str(tmp_path / "st")).ensure()
    before = tree(state.root)
    env = {**os.environ, "CLAUDE_STATE_FSYNC": "0"}
    cmd = [os.path.join(VENV_BIN, "claude-state"), "--state-dir", state.root]
    code, err, rss = _run_measured([*cmd, "sessions", "import", path], env)
    assert code == 1, err
    assert "over the limit" in err
    assert rss < 100 << 20, rss
    assert tree(state.root) == before


def test_zip_bomb_control_under_the_limit_is_expanded(tmp_path: Any) -> None:
    """Control: the limit raised above the bomb, the same import expands it (and the
    process's memory shows it), so the bound above is the limit's doing."""
    path = str(tmp_path / "bomb.bundle")
    _bomb(path, 64 << 20)
    state = StateDir(str(tmp_path / "st")).ensure()
    env = {**os.environ, "CLAUDE_STATE_FSYNC": "0"}
    cmd = [os.path.join(VENV_BIN, "claude-state"), "--state-dir", state.root]
    code, err, rss = _run_measured([*cmd, "sessions", "import", path], env)
    assert code == 1, err  # expanded, then refused as not a bundle (no session id)
    assert "over the limit" not in err
    assert rss > 100 << 20, rss
    env["CLAUDE_STATE_MAX_BUNDLE_MB"] = "16"
    code, err, rss = _run_measured([*cmd, "sessions", "import", path], env)
    assert code == 1 and "over the limit" in err
    assert rss < 100 << 20, rss


def test_refused_import_does_not_create_the_state_dir(good: dict[str, Any], tmp_path: Any) -> None:
    import copy

    forged = copy.deepcopy(good)
    f_duplicate_workflow(forged)
    bad, ok = str(tmp_path / "bad.bundle"), str(tmp_path / "ok.bundle")
    with open(bad, "wb") as f:
        f.write(frame.encode_doc(frame.Kind.BUNDLE, forged))
    with open(ok, "wb") as f:
        f.write(frame.encode_doc(frame.Kind.BUNDLE, good))
    target = str(tmp_path / "fresh" / "state")
    env = {**os.environ, "CLAUDE_STATE_FSYNC": "0"}
    cmd = [os.path.join(VENV_BIN, "claude-state"), "--state-dir", target, "sessions", "import"]
    r = subprocess.run([*cmd, bad], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "appears twice" in r.stderr
    assert not os.path.exists(target)
    r = subprocess.run([*cmd, ok], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr  # control: the unforged bundle creates it
    assert os.path.isdir(target)
