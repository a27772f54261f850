"""Checkpoints: frozen workflow documents, stored as full copies or deltas on a parent.

A checkpoint is ``checkpoints/<wid>/<cid>.checkpoint``, one frame (``Kind.CHECKPOINT``)
holding::

    {"id", "workflow_id", "type", "tags", "description", "created_at", "revision",
     "parent": cid | null, "incremental": bool, "depth": deltas since the last full,
     "doc": whole workflow document            (full)
     "delta": delta.diff(parent doc, doc)      (incremental),
     "blobs": [digests referenced by doc / introduced by delta]}

Why deltas: a workflow checkpointed after every step mostly repeats itself, and a whole
copy per checkpoint is what makes LangGraph use 50 MB for 100 checkpoints of a state
growing to 1 MB. A delta costs the size of the change. Why a full copy every
``full_every``: a restore then reads a bounded chain (at most ``full_every`` files),
and a damaged delta only costs the checkpoints that sit on it, never the whole history.

Checkpoint ids are ``new_id("cp-")`` (time first, so they sort by creation) and made
strictly increasing within a workflow, so "the newest" and "at or before" are id order.

The store keeps, per workflow, the document of the newest checkpoint it wrote or read
(``_head``): the next incremental checkpoint diffs against it without reading the chain
back, which is what keeps a checkpoint of a 20 MB workflow within its 100 ms budget.

A damaged link is never read as data (frames are checksummed): :meth:`materialize` falls
back to the newest intact checkpoint at or before the one asked for, and says so.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from claude_state.domain.delta import diff, patch
from claude_state.domain.model import MAX_HISTORY, Workflow
from claude_state.domain.userdata import ESC_KEY, collect_refs
from claude_state.errors import (
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from claude_state.ids import is_valid_id, new_id, validate_id
from claude_state.storage import frame
from claude_state.storage.atomic import remove
from claude_state.storage.docfile import read_doc, write_doc
from claude_state.storage.layout import StateDir, _makedirs
from claude_state.storage.locks import FileLock

if TYPE_CHECKING:
    from claude_state.domain.store import WorkflowStore

TYPES = ("manual", "automatic", "pre_step", "post_step", "error", "pre_compact", "recovery")
SUFFIX = ".checkpoint"
PREFIX = "cp-"
DEFAULT_FULL_EVERY = 10
#: Keys of a checkpoint's metadata (everything but the document or delta).
META_KEYS = (
    "id",
    "workflow_id",
    "type",
    "tags",
    "description",
    "created_at",
    "revision",
    "parent",
    "incremental",
    "depth",
)
#: Workflows whose head document is kept in memory (bounds memory of long processes).
_HEADS = 4
#: A chain longer than this is treated as damaged (a parent loop, or a forged file).
_MAX_CHAIN = 100_000


class _Damaged(Exception):
    """A chain could not be resolved: *cid* is the first broken link met."""

    def __init__(self, cid: str, detail: str) -> None:
        self.cid = cid
        self.detail = detail
        super().__init__(f"{cid}: {detail}")


_BLOB_REF = None


def blob_refs_in(data: bytes) -> builtins.list[str]:
    """Every blob digest referenced in serialised JSON, found in the bytes (C speed)
    rather than by walking the tree. A literal ``"$blob":"<digest>"`` inside a string
    value is escaped (``\\"``) and does not match. A user object with a ``$blob`` key is
    kept in an escape envelope (``domain/userdata.py``) and is not a reference: when
    the bytes hold an envelope, the tree is walked instead."""
    global _BLOB_REF
    if b'"' + ESC_KEY.encode() + b'"' in data:
        return sorted(collect_refs(frame.loads(data)))
    if _BLOB_REF is None:
        import re

        _BLOB_REF = re.compile(rb'"\$blob":"([0-9a-f]{32})"')
    return sorted({m.decode() for m in _BLOB_REF.findall(data)})


def _public(meta: dict[str, Any]) -> dict[str, Any]:
    """The contract's view of a checkpoint (``checkpoint list`` keys plus parent)."""
    return {
        "id": meta["id"],
        "workflow_id": meta["workflow_id"],
        "type": meta["type"],
        "tags": list(meta["tags"]),
        "description": meta["description"],
        "created_at": meta["created_at"],
        "incremental": meta["incremental"],
        "parent": meta["parent"],
    }


def _damaged_entry(wid: str, cid: str, exc: Exception) -> dict[str, Any]:
    """A ``checkpoint list`` row for a checkpoint that cannot be read."""
    return {
        "id": cid,
        "workflow_id": wid,
        "type": None,
        "tags": [],
        "description": "",
        "created_at": None,
        "incremental": None,
        "parent": None,
        "damaged": True,
        "problem": str(exc),
    }


def _check_body(body: Any, wid: str, cid: str, path: str) -> dict[str, Any]:
    """Validate the shape of a decoded checkpoint (the checksum says bytes are intact;
    this says they are a checkpoint of *this* workflow under *this* name)."""
    if not isinstance(body, dict):
        raise IntegrityError("checkpoint is not an object", path)
    if body.get("id") != cid or body.get("workflow_id") != wid:
        raise IntegrityError(
            f"checkpoint names itself {body.get('workflow_id')!r}/{body.get('id')!r}", path
        )
    inc = body.get("incremental")
    if not isinstance(inc, bool):
        raise IntegrityError("checkpoint has no 'incremental' flag", path)
    if inc:
        parent = body.get("parent")
        if not isinstance(parent, str) or not is_valid_id(parent) or "delta" not in body:
            raise IntegrityError("incremental checkpoint without a valid parent/delta", path)
    elif not isinstance(body.get("doc"), dict):
        raise IntegrityError("full checkpoint without a document", path)
    if not isinstance(body.get("tags"), list) or not isinstance(body.get("blobs"), list):
        raise IntegrityError("checkpoint has malformed 'tags' or 'blobs'", path)
    for key in ("type", "created_at", "description"):
        if not isinstance(body.get(key), str):
            raise IntegrityError(f"checkpoint has no {key!r}", path)
    return body


class CheckpointStore:
    """Checkpoints of one state directory.

    :param workflows: the workflow store to read workflows from and restore into
        (one is made when omitted).
    :param full_every: every ``full_every``-th checkpoint of a chain is full, so a
        restore reads at most that many files.
    """

    def __init__(
        self,
        state: StateDir,
        workflows: WorkflowStore | None = None,
        full_every: int = DEFAULT_FULL_EVERY,
    ) -> None:
        if full_every < 1:
            raise InvalidInputError("full_every must be at least 1")
        if workflows is None:
            from claude_state.domain.store import WorkflowStore

            workflows = WorkflowStore(state)
        self.state = state
        self.workflows = workflows
        self.full_every = full_every
        #: Newest checkpoint per workflow: (id, its document, depth).
        self._heads: OrderedDict[str, tuple[str, dict[str, Any], int]] = OrderedDict()
        self._meta: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    # -- files ---------------------------------------------------------------------------

    def workflow_ids(self) -> builtins.list[str]:
        """Workflows that have a checkpoint folder (whether or not the workflow exists)."""
        try:
            names = os.listdir(self.state.checkpoints)
        except FileNotFoundError:
            return []
        return sorted(
            n
            for n in names
            if is_valid_id(n) and os.path.isdir(os.path.join(self.state.checkpoints, n))
        )

    def ids(self, workflow_id: str) -> builtins.list[str]:
        """Checkpoint ids of *workflow_id*, oldest first (id order is creation order)."""
        try:
            names = os.listdir(self.state.checkpoint_dir(workflow_id))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(SUFFIX) and is_valid_id(n[: -len(SUFFIX)]):
                out.append(n[: -len(SUFFIX)])
        return sorted(out)

    def _lock(self, wid: str) -> FileLock:
        """Serialises create/delete/gc of one workflow's checkpoints (never held while
        the workflow store takes its own lock)."""
        return FileLock(os.path.join(self.state.checkpoints, validate_id(wid) + ".lock"))

    def _read(self, wid: str, cid: str) -> dict[str, Any]:
        """The verified body of a checkpoint.

        :raises NotFoundError: no such file.  :raises IntegrityError: damaged.
        """
        path = self.state.checkpoint(wid, cid)
        try:
            st = os.stat(path)
            _header, body = read_doc(path, frame.Kind.CHECKPOINT)
        except FileNotFoundError:
            raise NotFoundError("checkpoint", cid, f"of workflow {wid}") from None
        body = _check_body(body, wid, cid, path)
        self._meta[path] = (
            (st.st_ino, st.st_mtime_ns, st.st_size),
            {k: body.get(k) for k in META_KEYS},
        )
        return body

    def _meta_of(self, wid: str, cid: str) -> dict[str, Any]:
        """A checkpoint's metadata, from the per-process cache when the file is unchanged."""
        path = self.state.checkpoint(wid, cid)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError("checkpoint", cid, f"of workflow {wid}") from None
        cached = self._meta.get(path)
        if cached is not None and cached[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            return cached[1]
        self._read(wid, cid)
        return self._meta[path][1]

    # -- queries -------------------------------------------------------------------------

    def find(self, checkpoint_id: str) -> str:
        """The workflow id a checkpoint belongs to.

        :raises InvalidIdError: for an invalid id (before any path is built).
        :raises NotFoundError: no workflow holds it.
        """
        validate_id(checkpoint_id, "checkpoint id")
        for wid in self.workflow_ids():
            if os.path.exists(self.state.checkpoint(wid, checkpoint_id)):
                return wid
        raise NotFoundError("checkpoint", checkpoint_id)

    def list(
        self, workflow_id: str | None = None, *, damaged: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """Checkpoints (oldest first) of one workflow, or of all.

        :param damaged: also list the checkpoints that cannot be read, after the others,
            as ``{"id", "workflow_id", "damaged": True, "problem"}`` with the contract's
            other keys empty (a listing must not hide them; ``checkpoint list`` asks).
            Without it they are skipped, for callers that pick a checkpoint to use.
        :raises NotFoundError: *workflow_id* given but neither it nor checkpoints of it exist.
        """
        if workflow_id is not None:
            validate_id(workflow_id, "workflow id")
            wids = [workflow_id]
            if not self.ids(workflow_id) and not self.workflows.exists(workflow_id):
                raise NotFoundError("workflow", workflow_id)
        else:
            wids = self.workflow_ids()
        out = []
        bad = []
        for wid in wids:
            for cid in self.ids(wid):
                try:
                    out.append(_public(self._meta_of(wid, cid)))
                except (IntegrityError, NotFoundError) as exc:
                    if damaged and not isinstance(exc, NotFoundError):  # (removed meanwhile)
                        bad.append(_damaged_entry(wid, cid, exc))
        out.sort(key=lambda m: (m["created_at"], m["id"]))
        if damaged:
            for m in out:
                m["damaged"] = False
        return out + bad

    def show(self, checkpoint_id: str) -> dict[str, Any]:
        """Metadata of one checkpoint plus its revision, depth, blobs, stored size and
        chain (the full checkpoint first).

        :raises IntegrityError: the checkpoint or one of its ancestors is damaged or
            missing (named in the message): a shortened chain would hide it.
        """
        wid = self.find(checkpoint_id)
        body = self._read(wid, checkpoint_id)
        out = _public(body)
        out["revision"] = body.get("revision")
        out["depth"] = body.get("depth", 0)
        out["blobs"] = list(body["blobs"])
        out["size"] = os.path.getsize(self.state.checkpoint(wid, checkpoint_id))
        out["chain"] = self._chain_ids(wid, checkpoint_id)
        return out

    def _chain_ids(self, wid: str, cid: str) -> builtins.list[str]:
        """Ids from the full checkpoint down to *cid*.

        :raises IntegrityError: a link is damaged, missing, or the chain does not end.
        """
        chain = [cid]
        cur = cid
        while len(chain) <= _MAX_CHAIN:
            try:
                meta = self._meta_of(wid, cur)
            except NotFoundError:
                raise IntegrityError(
                    f"checkpoint {cid}: its ancestor {cur} is missing",
                    self.state.checkpoint(wid, cur),
                    kind="broken_chain",
                ) from None
            except IntegrityError as exc:
                if cur == cid:
                    raise
                raise IntegrityError(
                    f"checkpoint {cid}: its ancestor {cur} is damaged ({exc})",
                    self.state.checkpoint(wid, cur),
                    kind="broken_chain",
                ) from None
            if not meta["incremental"]:
                return chain[::-1]
            cur = meta["parent"]
            if cur in chain:
                raise IntegrityError(
                    f"checkpoint {cid}: its chain loops back to {cur}",
                    self.state.checkpoint(wid, cid),
                    kind="broken_chain",
                )
            chain.append(cur)
        raise IntegrityError(
            f"checkpoint {cid}: its chain is longer than {_MAX_CHAIN} links",
            self.state.checkpoint(wid, cid),
            kind="broken_chain",
        )

    # -- create --------------------------------------------------------------------------

    def create(
        self,
        workflow_id: str,
        type: str = "manual",
        tags: Iterable[str] = (),
        description: str = "",
        wf: Workflow | None = None,
    ) -> dict[str, Any]:
        """Checkpoint a workflow (its current state, or *wf* when given).

        Incremental against the newest checkpoint when that one resolves and the chain is
        shorter than ``full_every``; full otherwise.

        :returns: ``{"id", "workflow_id", "type", "tags", "created_at", "description",
            "incremental", "parent"}``.
        :raises InvalidInputError: unknown type, bad tags or description.
        :raises NotFoundError: unknown workflow.
        """
        validate_id(workflow_id, "workflow id")
        if type not in TYPES:
            raise InvalidInputError(f"unknown checkpoint type {type!r}: one of {', '.join(TYPES)}")
        tag_list = builtins.list(tags)
        for t in tag_list:
            if not isinstance(t, str) or not t or len(t) > 128 or "\n" in t:
                raise InvalidInputError(f"invalid tag {t!r}: non-empty text, one line, <=128")
        tag_list = builtins.list(dict.fromkeys(tag_list))
        if not isinstance(description, str):
            raise InvalidInputError("description must be text")
        if wf is None:
            wf = self.workflows.load(workflow_id)
        elif wf.id != workflow_id:
            raise InvalidInputError(f"workflow {wf.id} given for checkpoint of {workflow_id}")
        # A view of the workflow (no deep copy: see Workflow.to_dict) with large values
        # in shared blobs, serialised once. The view itself is kept as the chain head
        # that the next incremental checkpoint diffs against.
        import orjson

        view = self.workflows.document(wf, copy=False)
        doc_bytes = frame.dumps(view)
        from claude_state.clock import now_iso

        self.state.ensure(sweep=False)
        _makedirs(self.state.checkpoint_dir(workflow_id))
        with self._lock(workflow_id):
            existing = self.ids(workflow_id)
            last = existing[-1] if existing else None
            parent_doc: dict[str, Any] | None = None
            depth = 0
            if last is not None and self.full_every > 1:
                try:
                    parent_doc, parent_depth = self._doc_of(workflow_id, last)
                    depth = parent_depth + 1
                except _Damaged:
                    parent_doc = None  # start a fresh chain on a full checkpoint
            incremental = parent_doc is not None and depth < self.full_every
            cid = _next_id(last)
            body: dict[str, Any] = {
                "id": cid,
                "workflow_id": workflow_id,
                "type": type,
                "tags": tag_list,
                "description": description,
                "created_at": now_iso(),
                "revision": wf.revision,
                "parent": last if incremental else None,
                "incremental": incremental,
                "depth": depth if incremental else 0,
            }
            if incremental:
                assert parent_doc is not None
                part = frame.dumps(diff(parent_doc, view))
                body["delta"] = orjson.Fragment(part)
            else:
                part = doc_bytes
                body["doc"] = orjson.Fragment(part)
            body["blobs"] = blob_refs_in(part)
            path = self.state.checkpoint(workflow_id, cid)
            write_doc(path, frame.Kind.CHECKPOINT, body, self.state.temp)
            self._remember(workflow_id, cid, view, body["depth"])
        return _public(body)

    def _remember(self, wid: str, cid: str, doc: dict[str, Any], depth: int) -> None:
        self._heads[wid] = (cid, doc, depth)
        self._heads.move_to_end(wid)
        while len(self._heads) > _HEADS:
            self._heads.popitem(last=False)

    # -- chains --------------------------------------------------------------------------

    def _doc_of(
        self,
        wid: str,
        cid: str,
        cache: dict[str, Any] | None = None,
        known: dict[str, tuple[dict[str, Any], int]] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """The document of checkpoint *cid* and its depth, resolving its chain strictly.

        :param known: documents already resolved (cid -> (doc, depth)); the walk up the
            chain stops at the first of them (the in-memory head is always one).
        :raises _Damaged: naming the first link that is missing or damaged.
        """
        memo: dict[str, tuple[dict[str, Any], int]] = dict(known or {})
        head = self._heads.get(wid)
        if head is not None:
            memo.setdefault(head[0], (head[1], head[2]))
        if cid in memo and os.path.exists(self.state.checkpoint(wid, cid)):
            return memo[cid]
        bodies: builtins.list[dict[str, Any]] = []
        cur = cid
        seen: set[str] = set()
        while True:
            if cur in seen or len(seen) > _MAX_CHAIN:
                raise _Damaged(cur, "the chain of parents loops")
            seen.add(cur)
            if cur in memo and bodies:
                base = memo[cur][0]
                break
            body = self._read_cached(wid, cur, cache)
            if not body["incremental"]:
                base = body["doc"]
                break
            bodies.append(body)
            cur = body["parent"]
        doc: Any = base
        for body in reversed(bodies):
            try:
                doc = patch(doc, body["delta"])
            except IntegrityError as exc:
                raise _Damaged(body["id"], f"its delta does not apply: {exc}") from None
        if not isinstance(doc, dict):
            raise _Damaged(cid, "the chain does not produce a document")
        depth = bodies[0].get("depth", 0) if bodies else 0
        return doc, depth if isinstance(depth, int) and not isinstance(depth, bool) else 0

    def _read_cached(self, wid: str, cid: str, cache: dict[str, Any] | None) -> dict[str, Any]:
        """:meth:`_read`, memoised in *cache* for one operation, with damage as _Damaged."""
        if cache is not None and cid in cache:
            got = cache[cid]
            if isinstance(got, _Damaged):
                raise got
            return got  # type: ignore[no-any-return]
        try:
            body = self._read(wid, cid)
        except NotFoundError:
            err = _Damaged(cid, "it is missing")
        except IntegrityError as exc:
            text = str(exc)
            if exc.path and text.startswith(f"{exc.path}: "):
                text = text[len(exc.path) + 2 :]
            err = _Damaged(cid, text)
        else:
            if cache is not None:
                cache[cid] = body
            return body
        if cache is not None:
            cache[cid] = err
        raise err

    def _resolve(
        self,
        wid: str,
        cid: str,
        cache: dict[str, Any] | None = None,
        known: dict[str, tuple[dict[str, Any], int]] | None = None,
    ) -> Workflow:
        """The workflow of *cid*, strictly (:raises _Damaged:).

        On success *known* (when given) is left holding *cid*'s document alone, so a walk
        over a linear chain patches each delta once instead of re-reading the chain.
        """
        doc, depth = self._doc_of(wid, cid, cache, known)
        if known is not None:
            known.clear()
            known[cid] = (doc, depth)
        try:
            wf = Workflow.from_dict(doc)
        except InvalidInputError as exc:
            raise _Damaged(cid, f"its document is invalid: {exc}") from None
        if wf.id != wid:
            raise _Damaged(cid, f"its document is workflow {wf.id}")
        return wf

    def _materialize(self, cid: str) -> tuple[Workflow, str, builtins.list[str]]:
        wid = self.find(cid)
        cache: dict[str, Any] = {}
        try:
            return self._resolve(wid, cid, cache), cid, []
        except _Damaged as first:
            for older in reversed([c for c in self.ids(wid) if c < cid]):
                try:
                    wf = self._resolve(wid, older, cache)
                except _Damaged:
                    continue
                why = first.detail if first.cid == cid else f"{first.cid}: {first.detail}"
                return wf, older, [f"checkpoint {cid} is damaged; restored {older} instead ({why})"]
            raise IntegrityError(
                f"checkpoint {cid} is damaged ({first.cid}: {first.detail}) and no earlier "
                f"checkpoint of workflow {wid} is intact",
                self.state.checkpoint(wid, cid),
            ) from None

    def materialize(self, checkpoint_id: str) -> tuple[Workflow, builtins.list[str]]:
        """The workflow as checkpoint *checkpoint_id* froze it, and warnings.

        When a link of its chain is damaged, the newest intact checkpoint at or before it
        is used instead and a warning says ``"checkpoint X is damaged; restored Y
        instead"``.

        :raises NotFoundError: unknown checkpoint.
        :raises IntegrityError: neither it nor any earlier checkpoint resolves.
        """
        wf, _used, warnings = self._materialize(checkpoint_id)
        return wf, warnings

    # -- restore -------------------------------------------------------------------------

    def restore(self, checkpoint_id: str) -> dict[str, Any]:
        """Make the workflow what the checkpoint froze (or the fallback; see
        :meth:`materialize`).

        The write is one :meth:`WorkflowStore.save` (a new snapshot generation written
        atomically), so a crash leaves the old state or the restored one; repeating it is
        harmless. The current owner and epoch are kept (a restore never moves the fencing
        token back) and the revision moves forward, so a restored document is never
        mistaken for the old version it copies.

        :returns: ``{"workflow_id", "checkpoint_id", "restored_from", "warnings"}``.
        """
        wf, used, warnings = self._materialize(checkpoint_id)
        from claude_state.clock import now_iso

        at = now_iso()
        wf.updated_at = at
        wf.history.append({"at": at, "event": "restore", "detail": used})
        if len(wf.history) > MAX_HISTORY:
            del wf.history[: len(wf.history) - MAX_HISTORY]
        self.workflows.save(wf, keep_owner=True)  # owner read under the writer lock
        return {
            "workflow_id": wf.id,
            "checkpoint_id": checkpoint_id,
            "restored_from": used,
            "warnings": warnings,
        }

    # -- integrity -----------------------------------------------------------------------

    def verify(self, workflow_id: str | None = None) -> builtins.list[dict[str, str]]:
        """Problems in checkpoints: ``[{"path", "kind", "detail"}]``.

        Checks that every file decodes, every parent exists, every chain resolves to a
        valid workflow document, and every blob it references exists.
        """
        from claude_state.storage.blobs import BlobStore

        blobs = BlobStore(self.state)
        if workflow_id is not None:
            validate_id(workflow_id, "workflow id")
        wids = [workflow_id] if workflow_id is not None else self.workflow_ids()
        problems: builtins.list[dict[str, str]] = []
        for wid in wids:
            known: dict[str, tuple[dict[str, Any], int]] = {}
            for cid in self.ids(wid):
                path = self.state.checkpoint(wid, cid)
                try:
                    body = self._read_cached(wid, cid, None)
                except _Damaged as exc:
                    problems.append({"path": path, "kind": "corrupt", "detail": exc.detail})
                    continue
                try:
                    self._resolve(wid, cid, None, known)
                except _Damaged as exc:
                    kind = "missing_parent" if exc.detail == "it is missing" else "chain"
                    problems.append(
                        {
                            "path": path,
                            "kind": kind,
                            "detail": f"chain broken at {exc.cid}: {exc.detail}",
                        }
                    )
                for h in body["blobs"]:
                    if not isinstance(h, str) or not _is_digest(h) or not blobs.exists(h):
                        problems.append(
                            {
                                "path": path,
                                "kind": "missing_blob",
                                "detail": f"references blob {h} which is missing",
                            }
                        )
        return problems

    def suggest(self, workflow_id: str) -> dict[str, Any]:
        """Which checkpoint to restore after a crash or damage.

        :returns: ``{"recommended": cid | None, "warnings": [...]}``: the newest
            checkpoint whose chain resolves and whose blobs exist; a warning for each
            newer one skipped and why.
        :raises NotFoundError: neither the workflow nor checkpoints of it exist.
        """
        from claude_state.storage.blobs import BlobStore

        validate_id(workflow_id, "workflow id")
        blobs = BlobStore(self.state)
        warnings: builtins.list[str] = []
        cache: dict[str, Any] = {}
        ids = self.ids(workflow_id)
        if not ids and not self.workflows.exists(workflow_id):
            raise NotFoundError("workflow", workflow_id)
        if not ids:
            warnings.append(f"workflow {workflow_id} has no checkpoints")
        for cid in reversed(ids):
            try:
                doc, _depth = self._doc_of(workflow_id, cid, cache)
                self._resolve(workflow_id, cid, cache)
            except _Damaged as exc:
                where = "" if exc.cid == cid else f" (its chain link {exc.cid})"
                warnings.append(f"checkpoint {cid} is damaged{where}: {exc.detail}")
                continue
            missing = sorted(
                h for h in collect_refs(doc) if not _is_digest(h) or not blobs.exists(h)
            )
            if missing:
                warnings.append(
                    f"checkpoint {cid} references {len(missing)} missing blob(s)"
                    f" (e.g. {missing[0]})"
                )
                continue
            return {"recommended": cid, "warnings": warnings}
        return {"recommended": None, "warnings": warnings}

    # -- removal -------------------------------------------------------------------------

    def delete(self, checkpoint_id: str) -> bool:
        """Remove a checkpoint. Incremental checkpoints built on it are first rewritten
        as full ones, so deleting never breaks another checkpoint's chain.

        :raises NotFoundError: unknown checkpoint.
        """
        wid = self.find(checkpoint_id)
        with self._lock(wid):
            return self._delete_locked(wid, checkpoint_id)

    def _delete_locked(self, wid: str, cid: str) -> bool:
        for child in self.ids(wid):
            try:
                meta = self._meta_of(wid, child)
            except (IntegrityError, NotFoundError):
                continue
            if meta["incremental"] and meta["parent"] == cid:
                self._rebase_full(wid, child)
        path = self.state.checkpoint(wid, cid)
        self._meta.pop(path, None)
        head = self._heads.get(wid)
        if head is not None and head[0] == cid:
            del self._heads[wid]
        return remove(path)

    def _rebase_full(self, wid: str, cid: str) -> None:
        """Rewrite incremental *cid* as a full checkpoint (same id and metadata)."""
        try:
            doc, _depth = self._doc_of(wid, cid)
            body = self._read(wid, cid)
        except (_Damaged, IntegrityError, NotFoundError):
            return  # already broken: nothing to preserve
        new = {k: body.get(k) for k in META_KEYS}
        new.update(
            parent=None, incremental=False, depth=0, doc=doc, blobs=sorted(collect_refs(doc))
        )
        write_doc(self.state.checkpoint(wid, cid), frame.Kind.CHECKPOINT, new, self.state.temp)
        self._meta.pop(self.state.checkpoint(wid, cid), None)

    def gc(
        self,
        keep: int | None = None,
        older_than_seconds: float | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply retention: remove checkpoints beyond the newest *keep* of each workflow
        and/or older than *older_than_seconds* (both must allow it when both are given).

        A checkpoint a kept one needs (the ancestors of a kept incremental, back to its
        full checkpoint) is never removed. Damaged checkpoints are left for ``verify``.

        :returns: ``{"checkpoints_removed": [cid...], "bytes_freed": n, "dry_run": bool,
            "kept": n}``.
        """
        import time

        from claude_state.clock import parse_iso

        if keep is not None and keep < 0:
            raise InvalidInputError("--keep must be >= 0")
        removed: builtins.list[str] = []
        freed = 0
        kept = 0
        if keep is None and older_than_seconds is None:
            return {
                "checkpoints_removed": removed,
                "bytes_freed": 0,
                "dry_run": dry_run,
                "kept": sum(len(self.ids(w)) for w in self.workflow_ids()),
            }
        cutoff = None if older_than_seconds is None else time.time() - older_than_seconds
        for wid in self.workflow_ids():
            with self._lock(wid):
                ids = self.ids(wid)
                metas: dict[str, dict[str, Any]] = {}
                for cid in ids:
                    try:
                        metas[cid] = self._meta_of(wid, cid)
                    except (IntegrityError, NotFoundError):
                        continue
                candidates = set()
                readable = [c for c in ids if c in metas]
                for i, cid in enumerate(readable):
                    if keep is not None and i >= len(readable) - keep:
                        continue
                    if cutoff is not None:
                        try:
                            if parse_iso(metas[cid]["created_at"]) >= cutoff:
                                continue
                        except InvalidInputError:
                            continue
                    candidates.add(cid)
                needed: set[str] = set()
                for cid in ids:
                    if cid in candidates:
                        continue
                    cur: str | None = cid
                    while cur is not None and cur in metas and cur not in needed:
                        needed.add(cur)
                        m = metas[cur]
                        cur = m["parent"] if m["incremental"] else None
                doomed = sorted(candidates - needed)
                kept += len(ids) - len(doomed)
                for cid in doomed:
                    path = self.state.checkpoint(wid, cid)
                    try:
                        size = os.path.getsize(path)
                    except FileNotFoundError:
                        continue
                    if not dry_run:
                        remove(path)
                        self._meta.pop(path, None)
                        head = self._heads.get(wid)
                        if head is not None and head[0] == cid:
                            del self._heads[wid]
                    removed.append(cid)
                    freed += size
                if not dry_run and not self.ids(wid):
                    with contextlib.suppress(OSError):
                        os.rmdir(self.state.checkpoint_dir(wid))
        return {
            "checkpoints_removed": removed,
            "bytes_freed": freed,
            "dry_run": dry_run,
            "kept": kept,
        }

    def bodies(self, workflow_id: str) -> Iterable[tuple[str, dict[str, Any] | None]]:
        """Every checkpoint body of a workflow (None for a damaged one): gc marking."""
        for cid in self.ids(workflow_id):
            try:
                yield cid, self._read(workflow_id, cid)
            except (IntegrityError, NotFoundError):
                yield cid, None


def _is_digest(h: str) -> bool:
    return len(h) == 32 and all(c in "0123456789abcdef" for c in h)


def _next_id(last: str | None) -> str:
    """A fresh checkpoint id that sorts after *last* (ids are time-ordered, but two in
    one millisecond, or a clock stepping back, must still sort in creation order)."""
    cid = new_id(PREFIX)
    if last is None or cid > last:
        return cid
    try:
        ms = int(last[len(PREFIX) : len(PREFIX) + 12], 16) + 1
    except ValueError:
        ms = 0
    cid = f"{PREFIX}{ms:012x}{os.urandom(5).hex()}"
    if cid > last:
        return cid
    return last + "-" + os.urandom(3).hex()  # a foreign id: append so it sorts after
