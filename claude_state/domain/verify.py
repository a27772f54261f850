"""fsck for a state directory: every file checked, damage named, optional repair.

Cost: reads every file once (checksums and, for workflows, a full replay), so it is
linear in the size of the state; ``--repair`` writes only what it fixes.

What ``repair`` does, and only that:
* a workflow whose snapshot is damaged but whose previous generation is intact is
  rewritten from it (lossless, see ``domain/store.py``);
* a torn WAL tail is cut (it was never acknowledged);
* a file that cannot be rebuilt (a damaged blob, checkpoint, session record or lease) is
  moved to ``quarantine/`` so nothing reads it as data, and is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude_state.errors import ClaudeStateError, IntegrityError, StorageError
from claude_state.storage import frame, journal, wal
from claude_state.storage.blobs import digest
from claude_state.storage.layout import StateDir
from claude_state.storage.locks import FileLock
from claude_state.storage.safeio import describe_mode, read_regular

#: Files with no content to verify: flock targets and presence markers (``.crash``: the
#: crash was announced to plugins; ``.gate``: tools are refused while a workflow is
#: paused, its text is the reason shown to the agent).
_IGNORED_SUFFIXES = (".lock", ".gate", ".log", ".conf", ".crash")


@dataclass
class Report:
    checked: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    repaired: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": self.problems,
            "repaired": self.repaired,
        }

    def add(self, path: str, kind: str, detail: str) -> None:
        self.problems.append({"path": path, "kind": kind, "detail": detail})


#: Folders of the layout, and how many levels of sub-folders each may hold
#: (``checkpoints/<workflow>/``, ``blobs/<xx>/``). ``quarantine/`` holds whatever
#: repair moved there and is not looked into.
_TREES = {"workflows": 0, "checkpoints": 1, "sessions": 0, "blobs": 1, "temp": 0, "logs": 0}
_OPAQUE = ("quarantine",)


def _foreign_kind(found: str) -> str:
    if found in ("symlink", "fifo", "socket"):
        return "foreign_" + found
    if found.endswith("device"):
        return "foreign_device"
    return "wrong_type"


def _foreign(
    state: StateDir, report: Report, path: str, st: os.stat_result, want: str, repair: bool
) -> bool:
    """Name *path* if it is not a *want* (``file``/``directory``) of ours; with
    *repair*, move a foreign object to ``quarantine/`` (the entry itself: a symlink is
    moved, never followed). :returns: whether it is foreign (not to be read)."""
    found = describe_mode(st.st_mode)
    if found != want:
        detail = f"{found} where a {'regular file' if want == 'file' else want} belongs"
        if repair:
            _quarantine(state, report, path, f"quarantined ({detail})")
        else:
            report.add(path, _foreign_kind(found), detail)
        return True
    if st.st_uid != os.geteuid():
        report.add(path, "wrong_owner", f"owned by uid {st.st_uid}, not by this user")
        return True
    return False


def _scan(state: StateDir, report: Report, repair: bool) -> list[str]:
    """The regular files of the layout whose content is to be checked, sorted.

    Every object met on the way is ``lstat``-ed, never followed: a symlink, FIFO,
    socket or device, a file where a folder belongs (``sessions`` as a plain file
    drops every hook event) or a folder where a file belongs, and anything owned by
    another user, is named (see :func:`_foreign`) and not read.
    """
    out: list[str] = []

    def walk(directory: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            report.add(directory, "unreadable", str(exc))
            return
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if describe_mode(st.st_mode) == "directory" and depth > 0:
                if not _foreign(state, report, entry.path, st, "directory", repair):
                    walk(entry.path, depth - 1)
                continue
            if _foreign(state, report, entry.path, st, "file", repair):
                continue
            if not entry.name.endswith(_IGNORED_SUFFIXES) and directory != state.logs:
                out.append(entry.path)

    try:
        top = sorted(os.scandir(state.root), key=lambda e: e.name)
    except OSError as exc:
        report.add(state.root, "unreadable", str(exc))
        return out
    for entry in top:
        st = entry.stat(follow_symlinks=False)
        if entry.name in _TREES or entry.name in _OPAQUE:
            foreign = _foreign(state, report, entry.path, st, "directory", repair)
            if not foreign and entry.name in _TREES:
                walk(entry.path, _TREES[entry.name])
        else:
            _foreign(state, report, entry.path, st, "file", repair)  # hot.conf and such
    return sorted(out)


def _read(path: str) -> bytes:
    return read_regular(path)  # never through a symlink, never waiting on a FIFO


def _check_frame(path: str, kind: frame.Kind) -> None:
    frame.decode(_read(path), kind, path)


def _check_blob(path: str) -> None:
    _h, data = frame.decode(_read(path), frame.Kind.BLOB, path)
    if digest(data) != os.path.basename(path)[: -len(".blob")]:
        raise IntegrityError("blob content does not match its digest", path)


def _check_wal(path: str) -> wal.WALRead:
    return wal.read(path)


def verify(
    state: StateDir,
    *,
    repair: bool = False,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> Report:
    """Check every file of *state*; with *repair*, fix what can be fixed safely."""
    from claude_state.domain.store import WorkflowStore

    report = Report()
    files = _scan(state, report, repair)
    if total:
        total(len(files))
    store = WorkflowStore(state)
    for path in files:
        report.checked += 1
        rel_dir = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)
        try:
            if path.startswith(state.temp + os.sep):
                if repair:
                    os.unlink(path)
                    report.repaired.append({"path": path, "action": "removed orphaned temp file"})
                continue
            if rel_dir == "workflows" and name.endswith(".state"):
                wid = name[: -len(".state")]
                problems = store.verify(wid)
                if problems and repair:
                    try:
                        store.repair(wid)
                        report.repaired.append(
                            {
                                "path": path,
                                "action": "rebuilt from the previous generation without loss",
                            }
                        )
                        problems = store.verify(wid)
                    except ClaudeStateError:
                        pass
                report.problems.extend(problems)
            elif name.endswith((".state.prev",)):
                _check_frame(path, frame.Kind.WORKFLOW)
            elif name.endswith((".wal", ".wal.prev")):
                result = _check_wal(path)
                if (
                    name.endswith(".wal")
                    and rel_dir == "workflows"
                    and not os.path.exists(path[: -len(".wal")] + ".state")
                ):
                    report.add(path, "orphan", "WAL without a snapshot")
                if name.endswith(".wal") and rel_dir == "sessions":
                    _check_journal_behind(path, result, report, repair)
                if result.torn and repair and not name.endswith(".prev"):
                    # Under the writer's lock, on the file as it is now: a writer may
                    # have finished that "torn" record (acknowledged) since it was read.
                    stem = path[: -len(".wal")]
                    lock = stem + ".lock"
                    with FileLock(lock):
                        if wal.cut_torn_tail(path):
                            report.repaired.append({"path": path, "action": "cut torn tail"})
            elif name.endswith(".checkpoint"):
                _check_frame(path, frame.Kind.CHECKPOINT)
            elif name.endswith(".session"):
                _check_frame(path, frame.Kind.SESSION)
                _check_journal_missing(state, path, report, repair)
            elif name.endswith(".lease"):
                _check_frame(path, frame.Kind.LEASE)
            elif name.endswith(".dispatch"):
                _check_frame(path, frame.Kind.META)
            elif name.endswith(".blob"):
                _check_blob(path)
            else:
                report.add(path, "unknown", "file not part of the claude-state layout")
        except IntegrityError as exc:
            _damaged(state, report, path, exc, repair)
        except (OSError, StorageError) as exc:
            report.add(path, "unreadable", str(exc))
        finally:
            if progress:
                progress(1)
    if not any(p["path"] == state.checkpoints for p in report.problems):
        _verify_checkpoint_chains(state, report)
    from claude_state.domain.fencing import stale_lease_problems

    report.problems.extend(stale_lease_problems(state))  # old lease files put back
    return report


def _check_journal_behind(path: str, result: wal.WALRead, report: Report, repair: bool) -> None:
    """A session journal must reach past what its record applied.

    A journal that ends at or below the record's cursor lost records that were applied
    (a tail damaged or truncated after its events were folded in); new events numbered
    from its end would be taken for ones already applied and never be seen. Repair
    leaves a jump record so numbering resumes above the cursor.
    """
    stem = path[: -len(".wal")]
    applied = journal.applied_seq(stem + ".session")
    if applied < result.next_seq:
        return
    detail = (
        f"journal ends before seq {result.next_seq} but its session record applied up to "
        f"{applied}: applied records were lost (tail damaged or truncated)"
    )
    if repair:
        with FileLock(stem + ".lock"):
            jumped = wal.append_jump(path, applied + 1)
        how = "jump record" if jumped else "the cut torn tail left a jump record"
        report.repaired.append(
            {"path": path, "action": f"{detail}; numbering resumes above {applied} ({how})"}
        )
        return
    report.add(path, "journal_behind", detail)


def _check_journal_missing(state: StateDir, path: str, report: Report, repair: bool) -> None:
    """A session record that applied journal records whose journal is gone: those
    records are lost (the record keeps what they did). The next append numbers above
    the record's cursor; repair starts that journal now."""
    stem = path[: -len(".session")]
    applied = journal.applied_seq(path)
    if applied <= 0 or os.path.lexists(stem + ".wal"):
        return
    detail = f"the journal is missing, but the session record applied records up to {applied}"
    if repair:
        with FileLock(stem + ".lock"):
            if not os.path.lexists(stem + ".wal"):
                wal.create(
                    stem + ".wal",
                    state.temp,
                    kind=wal.KIND_SESSION,
                    generation=1,
                    base_seq=applied + 1,
                )
        report.repaired.append(
            {"path": stem + ".wal", "action": f"{detail}; started at {applied + 1}"}
        )
        return
    report.add(stem + ".wal", "journal_missing", detail)


def _damaged(state: StateDir, report: Report, path: str, exc: IntegrityError, repair: bool) -> None:
    if repair and not path.endswith((".wal", ".state")):
        _quarantine(state, report, path, f"quarantined ({exc})")
        return
    report.add(path, exc.kind, str(exc))


def _quarantine(state: StateDir, report: Report, path: str, action: str) -> None:
    """Move *path* (the entry itself, never what a symlink names) to ``quarantine/``."""
    state.quarantine(path)
    report.repaired.append({"path": path, "action": action})


def _verify_checkpoint_chains(state: StateDir, report: Report) -> None:
    """Chain-level checks (parents present, blobs present), when checkpoints exist."""
    try:
        from claude_state.domain.checkpoints import CheckpointStore
    except ImportError:  # pragma: no cover - during development only
        return
    seen = {p["path"] for p in report.problems}
    try:
        problems = CheckpointStore(state).verify()
    except ClaudeStateError as exc:
        report.add(state.checkpoints, "chain", str(exc))
        return
    for p in problems:
        if p.get("path") not in seen:
            report.problems.append(
                {
                    "path": str(p.get("path", "")),
                    "kind": str(p.get("kind", "chain")),
                    "detail": str(p.get("detail", "")),
                }
            )
