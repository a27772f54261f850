"""Garbage collection: old checkpoints, ended sessions, unreferenced blobs.

Three passes, in an order that only ever makes the last one remove *more*:

1. **Checkpoints** by retention (``--keep N`` newest per workflow, ``--older-than``), via
   :meth:`CheckpointStore.gc`, which never removes a checkpoint a kept one's chain needs.
2. **Sessions** that ended (record status ``ended`` or ``recovered``), whose lease is not
   held by a live process, and whose last sign of life (recorded times and file mtimes)
   is older than ``--older-than``. Without ``--older-than`` no session is removed: a
   session's journal is the only record of what the agent did.
3. **Blobs** by mark-and-sweep. Mark: every reference in every workflow's current document
   (snapshot + WAL replayed; references only in superseded WAL ops are never read
   again, so they do not count), every remaining checkpoint (document or delta, plus its
   ``blobs`` list), every session record and journal event. Sweep: every other blob
   **older than one hour**. The grace period exists because a writer stores a blob
   first and references it afterwards (a step output is put, then the op naming it is
   appended); a blob younger than the grace period may be such a blob in flight.
   :meth:`BlobStore.put` refreshes the mtime of a blob it reuses for the same reason.
   If a workflow or session file cannot be read, whatever its raw files still name is
   marked and the sweep is skipped (the rest of its references are unknown) with a
   warning: gc never guesses.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from claude_state.errors import ClaudeStateError, IntegrityError, InvalidInputError
from claude_state.ids import is_valid_id
from claude_state.storage import frame
from claude_state.storage.blobs import BlobStore, collect_refs
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock

#: Unreferenced blobs younger than this are kept (a writer may not have referenced them yet).
BLOB_GRACE_SECONDS = 3600.0
#: Files that make up a session, by suffix after ``<sid>``.
SESSION_SUFFIXES = (
    ".session",
    ".wal",
    ".lease",
    ".lock",
    ".session.prev",
    ".wal.prev",
    # the hook adapter's per-session files: plugin cursor, crash marker, tool gate
    ".dispatch",
    ".dispatch.lock",
    ".crash",
    ".gate",
    ".recovery.lock",
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Progress = Callable[[int], None]


def parse_duration(text: str) -> float:
    """Seconds in ``"30s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` (a bare number is
    seconds).

    :raises InvalidInputError: anything else (exit 2).
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"invalid duration {text!r}")
    t = text.strip().lower()
    unit = 1
    if t and t[-1] in _UNITS:
        unit = _UNITS[t[-1]]
        t = t[:-1]
    if not t or not t.isdigit() or len(t) > 12:
        raise InvalidInputError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 30s, 15m, 12h, 7d, 2w"
        )
    return float(int(t) * unit)


def _doc_refs(path: str, kind: int, out: set[str]) -> bool:
    """Mark the references of a framed document. :returns: False if it is unreadable."""
    from claude_state.errors import ClaudeStateError
    from claude_state.storage.atomic import read_file

    try:
        raw = read_file(path)  # no symlink or FIFO (storage/safeio.py)
    except FileNotFoundError:
        return True
    except (OSError, ClaudeStateError):
        return False
    try:
        _h, body = frame.decode_doc(raw, kind, path)
    except IntegrityError:
        return False
    collect_refs(body, out)
    return True


def _wal_refs(path: str, out: set[str]) -> bool:
    """Mark the references in every WAL record (ops or journal events)."""
    from claude_state.storage import wal

    try:
        records = wal.read(path).records
    except FileNotFoundError:
        return True
    except (OSError, IntegrityError):
        return False
    for _seq, payload in records:
        try:
            collect_refs(frame.loads(payload), out)
        except IntegrityError:
            continue  # a record that is not JSON carries no reference
    return True


def _session_ids(state: StateDir) -> list[str]:
    try:
        names = os.listdir(state.sessions)
    except FileNotFoundError:
        return []
    out = set()
    for n in names:
        for suffix in (".session", ".wal", ".lease"):
            if n.endswith(suffix) and is_valid_id(n[: -len(suffix)]):
                out.add(n[: -len(suffix)])
    return sorted(out)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _session_files(state: StateDir, sid: str) -> list[str]:
    return [os.path.join(state.sessions, sid + s) for s in SESSION_SUFFIXES]


def _lease_live(state: StateDir, sid: str) -> bool:
    """True unless the session's lease is absent, released, or held by a dead owner.

    A lease that cannot be read counts as live: a damaged lease is not evidence that
    its owner died.
    """
    try:
        from claude_state.domain import leases
        from claude_state.domain.staleness import is_stale
    except ImportError:  # pragma: no cover - depends on the build
        return os.path.exists(state.lease(sid))
    try:
        rec = leases.read(state, sid)
    except (ClaudeStateError, OSError):
        return True
    if rec is None or not rec.held:
        return False
    verdict = leases.verdict(rec)
    return verdict is None or not is_stale(verdict)


def _session_removable(state: StateDir, sid: str, cutoff: float) -> bool:
    """Ended or recovered, lease not live, and nothing about it newer than *cutoff*."""
    from claude_state.storage.docfile import read_doc

    try:
        _h, rec = read_doc(state.session_record(sid), frame.Kind.SESSION)
    except (FileNotFoundError, OSError, IntegrityError):
        return False
    if not isinstance(rec, dict) or rec.get("status") not in ("ended", "recovered"):
        return False
    newest = 0.0
    for key in ("ended_at", "recovered_at", "last_activity"):
        v = rec.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            newest = max(newest, float(v))
    for path in _session_files(state, sid):
        if path.endswith(".lock"):
            continue  # created by whoever locks; says nothing about activity
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except FileNotFoundError:
            continue
    if newest >= cutoff:
        return False
    return not _lease_live(state, sid)


def collect(
    state: StateDir,
    keep: int | None = None,
    older_than: str | float | None = None,
    dry_run: bool = False,
    *,
    progress: Progress | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Run the three passes (see the module docstring).

    :param keep: keep the newest *keep* checkpoints of each workflow.
    :param older_than: a duration (``"7d"``) or seconds; checkpoints and ended sessions
        older than it may go.
    :param dry_run: report what would go, remove nothing.
    :param progress: called with the number of items handled, for a progress line.
    :returns: ``{"checkpoints_removed": [...], "sessions_removed": [...],
        "blobs_removed": n, "bytes_freed": n, "dry_run": bool, "warnings": [...]}``.
    :raises InvalidInputError: a bad duration or a negative *keep*.
    """
    from claude_state.domain.checkpoints import CheckpointStore
    from claude_state.domain.store import WorkflowStore

    if isinstance(older_than, str):
        older = parse_duration(older_than)
    elif older_than is not None:
        older = float(older_than)
        if older < 0:
            raise InvalidInputError("--older-than must not be negative")
    else:
        older = None
    if keep is not None and keep < 0:
        raise InvalidInputError("--keep must be >= 0")
    now = time.time() if now is None else now
    tick = progress or (lambda n: None)
    warnings: list[str] = []

    # 1. checkpoints
    workflows = WorkflowStore(state)
    cps = CheckpointStore(state, workflows)
    report = cps.gc(keep=keep, older_than_seconds=older, dry_run=dry_run)
    removed_cps = set(report["checkpoints_removed"])
    freed = int(report["bytes_freed"])
    tick(len(removed_cps))

    # 2. sessions
    sessions_removed: list[str] = []
    if older is not None:
        cutoff = now - older
        for sid in _session_ids(state):
            if not _session_removable(state, sid, cutoff):
                continue
            if dry_run:
                freed += sum(_size(p) for p in _session_files(state, sid))
                sessions_removed.append(sid)
                tick(1)
                continue
            # Re-check and delete under the session's lock: a hook event journaled
            # between the check and the delete would otherwise be deleted with it.
            # The session lock goes last, still held: a process waiting on it then
            # sees it has no name any more and locks the path afresh (storage/locks.py).
            # The session's other locks stay (empty files): unlinking one that another
            # process holds would let a second holder in beside it.
            lock_path = state.session_lock(sid)
            with FileLock(lock_path):
                if not _session_removable(state, sid, cutoff):
                    continue
                for path in _session_files(state, sid):
                    if path.endswith(".lock"):
                        continue
                    freed += _size(path)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_path)
            sessions_removed.append(sid)
            tick(1)
        if sessions_removed and not dry_run:
            from claude_state.storage.atomic import fsync_dir

            fsync_dir(state.sessions)

    # 3. blobs: mark
    marked: set[str] = set()
    complete = True
    for wid in workflows.ids():
        try:
            collect_refs(workflows.load(wid).to_dict(), marked)
        except (IntegrityError, InvalidInputError):
            # Damaged beyond the lossless fallback: mark what the raw files still name,
            # but do not sweep, since the references of the lost part are unknown.
            snap, wpath = state.workflow_state(wid), state.workflow_wal(wid)
            for path in (snap, snap + ".prev"):
                _doc_refs(path, frame.Kind.WORKFLOW, marked)
            for path in (wpath, wpath + ".prev"):
                _wal_refs(path, marked)
            complete = False
            warnings.append(f"workflow {wid} could not be read: blob sweep skipped")
        except ClaudeStateError:
            continue  # deleted meanwhile
        tick(1)
    for wid in cps.workflow_ids():
        for cid, body in cps.bodies(wid):
            if cid in removed_cps or body is None:
                continue  # a damaged checkpoint cannot be restored: its refs do not count
            collect_refs(body.get("doc"), marked)
            collect_refs(body.get("delta"), marked)
            marked.update(h for h in body.get("blobs", []) if isinstance(h, str))
            tick(1)
    removed_sessions = set(sessions_removed) if not dry_run else set()
    for sid in _session_ids(state):
        if sid in removed_sessions or (dry_run and sid in sessions_removed):
            continue
        ok = _doc_refs(state.session_record(sid), frame.Kind.SESSION, marked)
        ok = _wal_refs(state.session_wal(sid), marked) and ok
        if not ok:
            complete = False
            warnings.append(f"session {sid} could not be read: blob sweep skipped")
        tick(1)

    # 3. blobs: sweep
    blobs_removed = 0
    if complete:
        store = BlobStore(state)
        for h in list(store):
            if h in marked:
                continue
            path = state.blob(h)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if now - st.st_mtime < BLOB_GRACE_SECONDS:
                continue
            if not dry_run and not store.delete(h):
                continue
            blobs_removed += 1
            freed += st.st_size
            tick(1)
    return {
        "checkpoints_removed": sorted(removed_cps),
        "sessions_removed": sessions_removed,
        "blobs_removed": blobs_removed,
        "bytes_freed": freed,
        "dry_run": dry_run,
        "warnings": warnings,
    }
