"""Durable workflows: a snapshot plus a write-ahead log of small operations.

Files per workflow (``docs/format.md``)::

    workflows/<id>.state       frame(WORKFLOW) {"doc", "wal_generation", "last_seq"}
    workflows/<id>.wal         ops after last_seq (generation = snapshot's generation)
    workflows/<id>.state.prev  the previous snapshot generation  } kept by compaction so a
    workflows/<id>.wal.prev    the previous WAL generation       } damaged snapshot loses nothing
    workflows/<id>.lock        writers' flock

A change is one op (``domain/ops.py``): validated against the current state, appended
to the WAL and flushed, and only then acknowledged. Loading is snapshot + replay. When
the WAL grows past a threshold it is compacted: a new snapshot generation is written and
a new WAL started; each step of that is crash-safe (a WAL older than its snapshot is
ignored, one newer than its snapshot means an old snapshot was put back, and is
reported).

Large values (step outputs, agent state, data) are moved to the blob store, so the
document stays small however much the outputs weigh, and loads do not read them.

A store object caches the last state it wrote, so a step update on a large workflow
costs one op append rather than a reload; the cache is checked against the files (the
snapshot's inode, mtime and size, the WAL's inode and whether anything follows the last
record it knows) under the lock, so several processes can share a workflow safely. It
also keeps each cached workflow's WAL open (at most :data:`CACHE_SIZE` of them; call
:meth:`WorkflowStore.close` to let them go early), which is most of the difference
between a step update and a bare ``pwrite`` + ``fdatasync``.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from claude_state.domain.model import Workflow
from claude_state.domain.ops import apply_op
from claude_state.domain.userdata import (
    check_data_keys,
    escape,
    escape_op,
    may_need_escape,
    unescape,
)
from claude_state.errors import (
    ConflictError,
    FrameError,
    IntegrityError,
    NotFoundError,
    StaleEpochError,
    StorageError,
)
from claude_state.ids import validate_id
from claude_state.storage import frame, safeio, wal
from claude_state.storage.atomic import atomic_write, fsync_dir
from claude_state.storage.blobs import BlobStore, is_ref
from claude_state.storage.docfile import read_doc
from claude_state.storage.layout import StateDir, temp_name
from claude_state.storage.locks import FileLock

#: Compact when the WAL passes this many bytes (replay costs ~2 us a record).
COMPACT_BYTES = 4 << 20
#: Values whose JSON exceeds this many bytes go to blobs.
BLOB_THRESHOLD = 64 * 1024
#: Workflows a store keeps cached (each with its WAL open); the oldest is dropped.
CACHE_SIZE = 32

Listener = Callable[[Workflow, dict[str, Any]], None]


@dataclass(slots=True)
class _Cached:
    wf: Workflow
    snap_key: tuple[int, int, int]
    wal_key: tuple[int, int]  # (generation, salt)
    wal_end: int  # where the WAL's records end (a preallocated file is longer)
    next_seq: int
    wal_ino: int  # the WAL file read: another inode means it was replaced
    wal_flags: int
    fd: int = -1  # that WAL, held open for the next appends (-1: not open yet)
    # The snapshot read, held open only so that its inode number cannot be reused by a
    # later snapshot while cached: the freshness key's inode then always tells a
    # replaced snapshot, whatever its size and however coarse the file-system clock.
    snap_fd: int = -1


def _replay(wf: Workflow, payload: bytes, path: str) -> None:
    """Apply one WAL record: an op, or the ops of one ``apply_many`` (an array)."""
    doc = frame.loads(payload, path)
    if type(doc) is list:
        for op in doc:
            apply_op(wf, op, trusted=True)
    else:
        apply_op(wf, doc, trusted=True)


_RACED = "the WAL was replaced while it was read"


def _stale_wal(wpath: str, wread: wal.WALRead, gen: int, want_salt: int) -> str | None:
    """[wal-link] Why the WAL read is not the one that follows the snapshot, or None.

    A snapshot records the salt of the WAL written after it. That WAL may legitimately
    be missing only in the crash window between the two writes, and then the WAL in
    place is the previous one, still hard-linked as ``.wal.prev`` (compaction and
    :meth:`WorkflowStore.save` link it before writing the snapshot). Any other WAL of an
    older generation, or of the same generation with another salt, was put back over
    the current one: the operations acknowledged in the current WAL are gone, and
    replaying the snapshot alone would drop them without a word.
    """
    h = wread.header
    if h.generation == gen and h.salt == want_salt:
        return None
    if h.generation > gen:
        return None  # an old snapshot put back: reported by the caller
    try:
        if os.stat(wpath).st_ino != wread.ino:
            return _RACED  # a writer replaced it after our read: the caller reads again
        if h.generation < gen and os.stat(wpath + ".prev").st_ino == wread.ino:
            return None  # the crash window: the previous WAL, all in the snapshot
    except FileNotFoundError:
        pass
    return (
        f"WAL of generation {h.generation} is not the one that follows snapshot generation "
        f"{gen}: an older WAL was put back, and operations acknowledged after the "
        "snapshot are missing"
    )


def _salt(value: object) -> int | None:
    """[wal-link] The ``wal_salt`` of a snapshot (16 hex digits), or None."""
    if isinstance(value, str) and len(value) == 16:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _link_prev(wpath: str, temp_dir: str) -> None:
    """[wal-link] Hard-link the live WAL (if any) as ``.wal.prev`` (atomically)."""
    if not os.path.exists(wpath):
        return
    tmp = temp_name(temp_dir)
    try:
        os.link(wpath, tmp)
        try:
            os.replace(tmp, wpath + ".prev")
        except OSError:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(f"could not link {wpath}: {exc.strerror}", wpath, exc.errno) from exc


def _stat_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class WorkflowStore:
    """Workflows of one state directory.

    :param compact_bytes: WAL size that triggers compaction into a new snapshot.
    :param blob_threshold: values larger than this (JSON bytes) are stored as blobs.
    """

    def __init__(
        self,
        state: StateDir,
        *,
        compact_bytes: int = COMPACT_BYTES,
        blob_threshold: int = BLOB_THRESHOLD,
    ) -> None:
        self.state = state
        self.blobs = BlobStore(state)
        self.compact_bytes = compact_bytes
        self.blob_threshold = blob_threshold
        self.listeners: builtins.list[Listener] = []
        #: ``(session id, epoch held)`` of the session this store writes for, when known
        #: (the CLI sets it: ``domain/fencing.py``). A write to a workflow that session
        #: owns under a newer epoch is refused: the session was fenced off by a recovery.
        self.caller: tuple[str, int] | None = None
        self._cache: dict[str, _Cached] = {}
        # Guards the cache and the WAL fds it holds: threads sharing a store (a step
        # still running after its timeout, a child workflow) must never see an fd that
        # another thread's eviction closed and the OS handed to another file.
        self._mutex = threading.RLock()
        self._path_cache: dict[str, tuple[str, str, str]] = {}
        # Writer locks kept open for apply (used under _mutex only: two threads locking
        # one open file would both get in); other writes open a lock of their own.
        self._locks: dict[str, FileLock] = {}

    # -- queries ------------------------------------------------------------------------

    def exists(self, workflow_id: str) -> bool:
        return os.path.exists(self.state.workflow_state(workflow_id))

    def ids(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.state.workflows)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".state")] for n in names if n.endswith(".state"))

    def list(self) -> builtins.list[Workflow]:
        """Every workflow that loads; damaged ones are skipped (``verify`` reports them)."""
        out = []
        for wid in self.ids():
            try:
                out.append(self.load(wid))
            except (IntegrityError, NotFoundError):
                continue
        return out

    def load(self, workflow_id: str, *, fallback: bool = True) -> Workflow:
        """Read a workflow from disk: snapshot + WAL replay (lock-free).

        :param fallback: when the snapshot is damaged, rebuild from the previous
            generation (``.prev`` files) if that is lossless; otherwise raise.
        :raises NotFoundError: no such workflow.
        :raises IntegrityError: damage that cannot be repaired without loss.
        """
        return self._read(workflow_id, fallback=fallback)[0]

    def resolve(self, value: Any) -> Any:
        """The user's value for a stored one: read from its blob when it is a reference
        (step outputs are loaded lazily), unescaped (``domain/userdata.py``)."""
        if is_ref(value):
            data = self.blobs.get(value)
            loaded = frame.loads(data)
            # A large value is walked only when its bytes hold an envelope at all.
            return unescape(loaded) if may_need_escape(data) else loaded
        return unescape(value)

    def output(self, workflow_id: str, step_id: str) -> Any:
        """The output of a step, read from its blob when it was stored as one."""
        return self.resolve(self.load(workflow_id).step(step_id).output)

    # -- writes -------------------------------------------------------------------------

    def lock(self, workflow_id: str, timeout: float | None = 30.0) -> FileLock:
        return FileLock(self._paths(workflow_id)[2], timeout)

    def _kept_lock(self, wid: str) -> FileLock:
        """The writer lock of *wid*, kept open between applies (``_mutex`` held)."""
        lk = self._locks.get(wid)
        if lk is None:
            if len(self._locks) >= CACHE_SIZE:
                self._locks.pop(next(iter(self._locks))).close()
            lk = self._locks[wid] = FileLock(self._paths(wid)[2], keep_open=True)
        return lk

    def create(self, wf: Workflow, *, escaped: bool = False) -> Workflow:
        """Store a new workflow. :raises ConflictError: when the id is taken.

        :param escaped: *wf* is already in the stored form (an import of a stored
            workflow); by default its values are the user's and are escaped first, so a
            value shaped like a blob reference is never taken for one.
        """
        validate_id(wf.id, "workflow id")
        if not escaped:
            check_data_keys(wf.data)
            doc = wf.to_dict()
            if may_need_escape(frame.dumps(doc)):
                wf = Workflow.from_dict(escape(doc))
        self.state.ensure(sweep=False)
        with self.lock(wf.id):
            if self.exists(wf.id):
                raise ConflictError(f"workflow {wf.id} already exists")
            # WAL first: the snapshot's rename is the commit point, so a create that
            # fails leaves no workflow behind (only an orphan WAL, replaced next time).
            h = wal.create(
                self.state.workflow_wal(wf.id),
                self.state.temp,
                kind=wal.KIND_WORKFLOW,
                generation=1,
                base_seq=1,
                flags=wal.FLAG_PREALLOC,
            )
            self._write_snapshot(wf, generation=1, last_seq=0, wal_salt=h.salt)
        self._drop(wf.id)
        return wf

    def apply(self, workflow_id: str, op: dict[str, Any], *, epoch: int | None = None) -> Workflow:
        """Validate *op*, append it durably, and return the new state.

        The workflow returned is the store's cached copy, kept for the next op: read
        it, don't change it (``Workflow.from_dict(wf.to_dict())`` gives one to change).
        Changes made to it directly would never reach the WAL.

        :param epoch: the caller's owner epoch; an epoch older than the workflow's owner
            epoch is a fenced-off writer and is refused.
        :raises TransitionError, NotFoundError, InvalidInputError: the op is refused and
            nothing is written.
        :raises StaleEpochError: *epoch* is stale.
        :raises StorageError: the append failed; the op was not applied.
        """
        return self.apply_many(workflow_id, [op], epoch=epoch)

    def apply_many(
        self, workflow_id: str, ops: Iterable[dict[str, Any]], *, epoch: int | None = None
    ) -> Workflow:
        """Apply several ops in order, all or none, with one flush (group commit).

        Order, under the writer lock: check every op; write the record (not yet
        durable) and start its write-out; change the cached workflow, which cannot
        fail, while the device writes; flush; acknowledge. An op that fails its checks
        writes nothing; a failed write or flush takes the record back and leaves the
        cache to be reloaded. Several ops go into *one* WAL record (a JSON array): a
        power loss can then tear the group only as a whole, at the tail, where it is
        cut, rather than keep a later record of it after a torn earlier one, which a
        reader could not tell from damage.
        """
        prepared = [self._prepare(op) for op in ops]
        ops = [op for op, _payload in prepared]
        if len(prepared) == 1:
            payloads = [prepared[0][1]]
        else:  # each payload is a JSON object: joined, they make the array's bytes
            payloads = [b"[" + b",".join(payload for _op, payload in prepared) + b"]"]
        with self._mutex, self._kept_lock(workflow_id):
            entry = self._fresh(workflow_id)
            wf = entry.wf
            if epoch is not None and wf.owner is not None and epoch < int(wf.owner["epoch"]):
                raise StaleEpochError(f"workflow {workflow_id}", epoch, int(wf.owner["epoch"]))
            self._check_caller(wf)
            if not ops:
                return wf
            wpath = self._paths(workflow_id)[1]
            staged: list[Any] = []

            def stage() -> None:  # every op is valid: write them, flush later
                held = (entry.wal_key[1], entry.wal_end, entry.next_seq, entry.wal_flags)
                staged[:] = wal.stage_fd(entry.fd, wpath, payloads, held, start_writeout=True)

            before_rev = wf.revision
            try:
                if len(ops) == 1:
                    apply_op(wf, ops[0], ready=stage)
                else:
                    # Several ops must all pass before any is written: check them on a
                    # scratch copy, then write, then apply them for real.
                    scratch = Workflow.from_dict(wf.to_dict())
                    for op in ops:
                        apply_op(scratch, op)
                    stage()
                    for op in ops:
                        apply_op(wf, op)
                if staged:
                    wal.sync_fd(entry.fd, wpath, staged[2])
            except BaseException:
                if staged:
                    wal.unstage_fd(entry.fd, staged[2])  # never acknowledged: never seen
                if staged or wf.revision != before_rev:
                    self._drop(workflow_id)  # memory may be ahead of disk
                raise
            seqs, entry.wal_end = staged[0], staged[1]
            entry.next_seq = seqs[-1] + 1
            if entry.wal_end > self.compact_bytes:
                try:
                    self._compact(workflow_id, entry)
                except StorageError:
                    # The ops are durable in the WAL: they are acknowledged whatever
                    # happens to this housekeeping, which leaves a consistent state
                    # (old snapshot + WAL, or new snapshot) and is retried next time.
                    self._drop(workflow_id)
        for op in ops:
            for listener in self.listeners:
                listener(wf, op)
        return wf

    def save(self, wf: Workflow, *, keep_owner: bool = False) -> None:
        """Write *wf* whole as a new snapshot generation: one durable write.

        :param keep_owner: keep the stored workflow's owner and epoch and move the
            revision past it (restores and rollbacks to a checkpoint), read under the
            writer lock so a concurrent recovery cannot be undone.

        Used for imports, restores and rollbacks to a checkpoint; step-by-step changes
        should go through :meth:`apply`, which is far cheaper.
        """
        validate_id(wf.id, "workflow id")
        self.state.ensure(sweep=False)
        with self.lock(wf.id):
            if keep_owner:
                # Read under the same lock as the write: a recovery bumping the owner's
                # epoch in between must not be undone (fencing never moves back).
                try:
                    current = self._read(wf.id, fallback=True)[0]
                except (NotFoundError, IntegrityError):
                    current = None
                if current is not None:
                    self._check_caller(current)
                    wf.owner = current.owner
                    wf.revision = max(wf.revision, current.revision) + 1
            gen, last_seq = self._position(wf.id)
            # One durable write, like the floor pipeline: the old WAL is left as it is.
            # Its generation is now older than the snapshot's, so readers ignore it, and
            # the next writer replaces it with a WAL of the new generation. .state.prev
            # goes first (the snapshot's directory flush makes that durable): the new
            # snapshot is not a compaction of .prev, so no fallback may use them.
            try:
                os.unlink(self._files(wf.id)[2])  # .state.prev
            except FileNotFoundError:
                pass
            # [wal-link] (.wal.prev is replaced, never removed first: a kill in between
            # would leave a WAL older than the snapshot and unlinked, which reads as one
            # put back.) The snapshot names the salt of the WAL the next writer starts;
            # the old WAL stays linked as .wal.prev, which is what tells it from an old
            # WAL put back later (see _stale_wal).
            _link_prev(self.state.workflow_wal(wf.id), self.state.temp)
            self._write_snapshot(wf, gen + 1, last_seq, wal_salt=wal.new_salt())
        self._drop(wf.id)

    def delete(self, workflow_id: str) -> bool:
        """Remove a workflow's files (not its checkpoints). :returns: whether it existed."""
        existed = self.exists(workflow_id)
        with self.lock(workflow_id):
            if self.caller is not None:
                try:
                    self._check_caller(self._read(workflow_id, fallback=True)[0])
                except (NotFoundError, IntegrityError):
                    pass  # nothing readable to fence with
            for path in self._files(workflow_id):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            fsync_dir(self.state.workflows)
            # Unlinked while held: whoever locked the old file next sees it has no name
            # any more and locks the path again (locks.py), so two writers never both
            # get in, one through the old file and one through a new one.
            try:
                os.unlink(self.state.workflow_lock(workflow_id))
            except FileNotFoundError:
                pass
        self._drop(workflow_id)
        return existed

    # -- integrity ----------------------------------------------------------------------

    def verify(self, workflow_id: str) -> builtins.list[dict[str, str]]:
        """Problems found in a workflow's files: ``[{"path", "kind", "detail"}]``."""
        problems = []
        snap = self.state.workflow_state(workflow_id)
        try:
            self._read(workflow_id, fallback=False)
        except NotFoundError as exc:
            problems.append({"path": snap, "kind": "missing", "detail": str(exc)})
        except IntegrityError as exc:
            problems.append({"path": exc.path or snap, "kind": exc.kind, "detail": str(exc)})
        except Exception as exc:  # a document that verifies but does not parse
            problems.append({"path": snap, "kind": "invalid", "detail": str(exc)})
        return problems

    def repair(self, workflow_id: str) -> bool:
        """Rewrite a damaged snapshot from the lossless fallback. :returns: repaired?"""
        wf = self._read(workflow_id, fallback=True)[0]
        self.save(wf)
        return True

    # -- internals ----------------------------------------------------------------------

    def _check_caller(self, wf: Workflow) -> None:
        """Refuse a write by :attr:`caller` to a workflow its session owns under a newer
        epoch (lock held). Epochs of different sessions are not compared: they count
        different leases.

        :raises StaleEpochError:
        """
        caller = self.caller
        if caller is None or wf.owner is None or wf.owner.get("session_id") != caller[0]:
            return
        current = int(wf.owner["epoch"])
        if caller[1] < current:
            raise StaleEpochError(f"workflow {wf.id} (session {caller[0]})", caller[1], current)

    def _files(self, wid: str) -> builtins.list[str]:
        s, w = self.state.workflow_state(wid), self.state.workflow_wal(wid)
        return [s, w, s + ".prev", w + ".prev"]

    def _externalize(self, value: Any) -> Any:
        if is_ref(value):
            return value
        return self.blobs.externalize(value, self.blob_threshold)

    def _prepare(self, op: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """*op* as applied (user values escaped, large ones replaced by blob
        references) and its WAL bytes.

        A small op (the usual step update) is serialised once, whole. In a larger one
        each value is serialised once: to measure it, and then embedded in the record as
        an ``orjson.Fragment`` rather than serialised again.
        """
        payload = frame.dumps(op)
        escaped = escape_op(op, payload)
        if escaped is not op:  # a user value shaped like a reference: wrapped
            op, payload = escaped, frame.dumps(escaped)
        if len(payload) <= self.blob_threshold:
            return op, payload  # no value in it can pass the threshold: one serialisation
        fragments: dict[str, Any] = {}
        for key in ("output", "value", "state"):
            value = op.get(key)
            packed = self._pack(value)
            if packed is value:
                continue
            if is_ref(packed):
                op = {**op, key: packed}
            else:
                fragments[key] = packed
        return op, frame.dumps({**op, **fragments} if fragments else op)

    def _paths(self, wid: str) -> tuple[str, str, str]:
        """(snapshot, WAL, lock) paths of *wid*, built and id-checked once per store."""
        paths = self._path_cache.get(wid)
        if paths is None:
            st = self.state
            paths = (st.workflow_state(wid), st.workflow_wal(wid), st.workflow_lock(wid))
            if len(self._path_cache) > 1024:
                self._path_cache.clear()
            self._path_cache[wid] = paths
        return paths

    def _pack(self, value: Any) -> Any:
        """*value* as it goes into a snapshot, serialised at most once.

        A large value becomes a blob reference; a small one is serialised here and
        embedded as an ``orjson.Fragment``, so the snapshot's own ``dumps`` does not
        serialise it a second time (measuring a value's size means serialising it).
        """
        if value is None or isinstance(value, (bool, int, float)) or is_ref(value):
            return value
        if isinstance(value, str) and 6 * len(value) + 2 <= self.blob_threshold:
            return value  # cannot pass the threshold even if every character is escaped
        import orjson

        data = frame.dumps(value)
        if len(data) > self.blob_threshold:
            return self.blobs.put(data)
        return orjson.Fragment(data)

    def document(self, wf: Workflow, *, copy: bool = True) -> dict[str, Any]:
        """A JSON tree of *wf* with every large value moved to the blob store.

        For checkpoints: they must stay small and share blobs with the live workflow
        whatever the caller holds in memory (a workflow built in memory may still carry
        its outputs inline). Unlike a snapshot's tree it holds plain values only (no
        pre-serialised fragments), so it can be diffed.

        :param copy: False returns a view sharing nested values with *wf* (no deep
            copy), for a caller that only reads it before *wf* changes again.
        """
        doc = wf.to_dict(copy)
        for sd in doc["steps"]:
            sd["output"] = self._externalize(sd["output"])
            if sd["agent_state"] and "$ref" not in sd["agent_state"]:
                ext = self._externalize(sd["agent_state"])
                if is_ref(ext):
                    sd["agent_state"] = {"$ref": ext}
        doc["data"] = {k: self._externalize(v) for k, v in doc["data"].items()}
        return doc

    def _snapshot_doc(self, wf: Workflow) -> dict[str, Any]:
        """The workflow's JSON tree for a snapshot; large values move to blobs (in *wf*
        too, so the cached copy stays small)."""
        doc = wf.to_dict(copy=False)  # serialised at once: no deep copy needed
        for step, sd in zip(wf.steps, doc["steps"], strict=True):
            if step.output is not None:
                sd["output"] = packed = self._pack(step.output)
                if is_ref(packed):
                    step.output = packed
            if step.agent_state and "$ref" not in step.agent_state:
                packed = self._pack(step.agent_state)
                if is_ref(packed):
                    step.agent_state = {"$ref": packed}
                    packed = step.agent_state
                sd["agent_state"] = packed
        data = {}
        for key, value in wf.data.items():
            data[key] = packed = self._pack(value)
            if is_ref(packed):
                wf.data[key] = packed
        doc["data"] = data
        return doc

    def _write_snapshot(
        self, wf: Workflow, generation: int, last_seq: int, wal_salt: int | None = None
    ) -> None:
        doc: dict[str, Any] = {
            "doc": self._snapshot_doc(wf),
            "wal_generation": generation,
            "last_seq": last_seq,
        }
        if wal_salt is not None:  # [wal-link] the salt of the WAL that follows it
            doc["wal_salt"] = f"{wal_salt:016x}"  # fixed width: a snapshot's size is not random
        atomic_write(
            self.state.workflow_state(wf.id),
            frame.encode_doc(frame.Kind.WORKFLOW, doc, generation),
            self.state.temp,
        )

    def _position(self, wid: str) -> tuple[int, int]:
        """(current generation, last sequence number) of *wid*, read cheaply: the frame
        header and the WAL's tail, not the snapshot's payload (lock held)."""
        snap, wpath = self.state.workflow_state(wid), self.state.workflow_wal(wid)
        try:
            header = frame.decode_header(safeio.read_head(snap, frame.HEADER_SIZE), snap)
        except (FileNotFoundError, FrameError):
            header = None  # absent or damaged: the WAL alone says how far things went
        wal_gen, last_seq = wal.tail(wpath)
        # The new generation must be newer than the snapshot's and the WAL's (after a
        # damaged header, only the WAL still says how far generations went). Sequence
        # numbers need only agree between a snapshot and the WAL of its own generation
        # (the next writer starts that WAL at last_seq + 1), so the WAL's end is enough:
        # the snapshot's payload is not decompressed.
        return max(header.generation if header is not None else 0, wal_gen), last_seq

    def _rotate(self, wf: Workflow, generation: int, last_seq: int) -> None:
        """Compaction: start generation *generation*, keeping the old one as ``.prev``.

        Order matters for crash safety: (1) hard-link the current snapshot and WAL to
        ``.prev`` (the live files stay in place), (2) write the new snapshot, (3) start
        the new WAL, flagged ``derived``: the new snapshot is exactly the old generation
        replayed, which is what lets a damaged snapshot be rebuilt from ``.prev``
        without loss. A crash after (2) leaves a WAL older than its snapshot, which is
        ignored because every record in it is already in the snapshot.
        """
        snap, wpath = self.state.workflow_state(wf.id), self.state.workflow_wal(wf.id)
        try:
            for live in (snap, wpath):
                if os.path.exists(live):
                    tmp = temp_name(self.state.temp)
                    os.link(live, tmp)
                    try:
                        os.replace(tmp, live + ".prev")
                    except OSError:
                        os.unlink(tmp)  # leave no temp link behind
                        raise
        except OSError as exc:
            raise StorageError(
                f"could not keep the previous generation of {snap}: {exc.strerror}",
                snap,
                exc.errno,
            ) from exc
        salt = wal.new_salt()  # [wal-link]
        self._write_snapshot(wf, generation, last_seq, wal_salt=salt)
        wal.create(
            wpath,
            self.state.temp,
            kind=wal.KIND_WORKFLOW,
            generation=generation,
            base_seq=last_seq + 1,
            flags=wal.FLAG_DERIVED | wal.FLAG_PREALLOC,
            salt=salt,
        )

    def _compact(self, wid: str, entry: _Cached) -> None:
        gen = entry.wal_key[0]
        self._rotate(entry.wf, gen + 1, entry.next_seq - 1)
        self._drop(wid)

    def _fresh(self, wid: str) -> _Cached:
        """The cached state of *wid*, brought up to date with the files (lock held)."""
        entry = self._cache.get(wid)
        if entry is not None:
            try:
                snap, wpath, _lock = self._paths(wid)
                if _stat_key(snap) == entry.snap_key and os.stat(wpath).st_ino == entry.wal_ino:
                    # Records other writers appended since (usually none: one pread).
                    recs, end = wal.read_from_fd(
                        entry.fd, wpath, entry.wal_end, entry.wal_key[1], entry.next_seq
                    )
                    for seq, payload in recs:
                        _replay(entry.wf, payload, wpath)
                        entry.next_seq = seq + 1
                    entry.wal_end = end
                    return entry
            except (OSError, IntegrityError):
                pass
            self._drop(wid)
        wf, snap_key, header, end, next_seq, ino = self._read(wid, fallback=True, for_write=True)
        assert header is not None
        entry = _Cached(
            wf, snap_key, (header.generation, header.salt), end, next_seq, ino, header.flags
        )
        snap, wpath, _lock = self._paths(wid)
        entry.fd = self._open_checked(wpath, ino, os.O_RDWR)
        if snap_key != (0, 0, 0):  # (a state rebuilt from .prev never matches anyway)
            try:
                entry.snap_fd = self._open_checked(snap, snap_key[0], os.O_RDONLY)
            except StorageError:
                os.close(entry.fd)
                raise
        while len(self._cache) >= CACHE_SIZE:
            self._drop(next(iter(self._cache)))
        self._cache[wid] = entry
        return entry

    @staticmethod
    def _open_checked(path: str, ino: int, flags: int) -> int:
        """*path* opened, checked to be the file that was read (lock held)."""
        try:
            fd = os.open(path, flags | safeio.SAFE_FLAGS)  # no symlink/FIFO; ino checked
        except OSError as exc:
            raise StorageError(f"could not open {path}: {exc.strerror}", path, exc.errno) from exc
        if os.fstat(fd).st_ino != ino:
            os.close(fd)
            raise StorageError(f"{path} was replaced while its writer lock was held", path)
        return fd

    def _drop(self, wid: str) -> None:
        """Forget the cached state of *wid* and close its files."""
        with self._mutex:
            entry = self._cache.pop(wid, None)
            if entry is None:
                return
            fds = (entry.fd, entry.snap_fd)
            entry.fd = entry.snap_fd = -1
            for fd in fds:
                if fd >= 0:
                    try:  # noqa: SIM105 - a close that fails leaves nothing to undo
                        os.close(fd)
                    except OSError:
                        pass

    def close(self) -> None:
        """Close the WALs and locks this store holds open (it stays usable: they reopen)."""
        with self._mutex:
            for wid in builtins.list(self._cache):
                self._drop(wid)
            while self._locks:
                self._locks.popitem()[1].close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing to report
            pass

    def _read(
        self, wid: str, *, fallback: bool, for_write: bool = False, _attempt: int = 0
    ) -> tuple[Workflow, tuple[int, int, int], wal.WALHeader | None, int, int, int]:
        """(workflow, snapshot key, WAL header, WAL data end, next seq, WAL inode)."""
        snap, wpath, _lock = self._paths(wid)
        try:
            key = _stat_key(snap)
            header, body = read_doc(snap, frame.Kind.WORKFLOW)
            gen, last_seq = header.generation, int(body["last_seq"])
            wf = Workflow.from_dict(body["doc"], trusted=True)
            want_salt = _salt(body.get("wal_salt"))  # [wal-link] None in older snapshots
        except FileNotFoundError:
            raise NotFoundError("workflow", wid) from None
        except (IntegrityError, KeyError, TypeError, ValueError) as exc:
            if not fallback:
                if isinstance(exc, IntegrityError):
                    raise
                raise FrameError(f"malformed snapshot: {exc}", snap) from exc
            wf, gen, last_seq = self._from_prev(wid, exc)
            key = (0, 0, 0)
            want_salt = None
        try:
            wread = wal.read(wpath)
        except FileNotFoundError:
            wread = None
        if wread is not None and isinstance(want_salt, int):  # [wal-link]
            stale = _stale_wal(wpath, wread, gen, want_salt)
            if stale == _RACED and _attempt < 20:  # a writer replaced the WAL meanwhile
                return self._read(
                    wid, fallback=fallback, for_write=for_write, _attempt=_attempt + 1
                )
            if stale:
                raise IntegrityError(stale, wpath, kind="stale_wal")
        if wread is None or wread.header.generation < gen:
            # No WAL yet, or one a crash left behind mid-compaction: all in the snapshot.
            if for_write:
                h = wal.create(
                    wpath,
                    self.state.temp,
                    kind=wal.KIND_WORKFLOW,
                    generation=gen,
                    base_seq=last_seq + 1,
                    flags=wal.FLAG_PREALLOC,
                    salt=want_salt if isinstance(want_salt, int) else None,
                )
                return (
                    wf,
                    _stat_key(snap) if key != (0, 0, 0) else key,
                    h,
                    wal.FILE_HEAD_SIZE,
                    last_seq + 1,
                    os.stat(wpath).st_ino,
                )
            return wf, key, None, 0, last_seq + 1, 0
        if wread.header.generation > gen:
            # Readers do not lock: a compaction may have replaced the snapshot and the
            # WAL between our two reads. Only an unchanged snapshot means one was put back.
            if key != (0, 0, 0) and _attempt < 20:
                try:
                    raced = _stat_key(snap) != key
                except FileNotFoundError:
                    raced = True
                if raced:
                    return self._read(
                        wid, fallback=fallback, for_write=for_write, _attempt=_attempt + 1
                    )
            raise IntegrityError(
                f"snapshot generation {gen} is older than its WAL ({wread.header.generation}):"
                " an old snapshot was put back",
                snap,
                kind="stale_generation",
            )
        for seq, payload in wread.records:
            if seq > last_seq:
                _replay(wf, payload, wpath)
        next_seq = max(wread.next_seq, last_seq + 1)
        return wf, key, wread.header, wread.valid_end, next_seq, wread.ino

    def _from_prev(self, wid: str, cause: Exception) -> tuple[Workflow, int, int]:
        """Rebuild from ``.prev`` snapshot + ``.prev`` WAL when that loses nothing."""
        snap, wpath = self.state.workflow_state(wid), self.state.workflow_wal(wid)
        try:
            # The damaged snapshot must be the compaction of .prev, not a later whole-
            # document save (which leaves an older, possibly derived WAL in place): its
            # header, when it still verifies, must name the derived WAL's generation.
            damaged_gen: int | None = None  # stays None when the header is damaged too
            try:
                damaged_gen = frame.decode_header(
                    safeio.read_head(snap, frame.HEADER_SIZE), snap
                ).generation
            except FrameError:
                pass  # header damaged too: .prev still existing is the proof (save drops it)
            header, body = read_doc(snap + ".prev", frame.Kind.WORKFLOW)
            wf = Workflow.from_dict(body["doc"], trusted=True)
            prev_wal = wal.read(wpath + ".prev")
            cur_wal = wal.read(wpath)
        except (OSError, IntegrityError, KeyError, TypeError, ValueError):
            raise self._damaged(snap, cause) from cause
        if (
            not cur_wal.header.flags & wal.FLAG_DERIVED
            or (damaged_gen is not None and damaged_gen != cur_wal.header.generation)
            or prev_wal.header.generation != header.generation
            or cur_wal.header.base_seq != prev_wal.next_seq
        ):
            raise self._damaged(snap, cause) from cause
        for seq, payload in prev_wal.records:
            if seq > int(body["last_seq"]):
                _replay(wf, payload, wpath + ".prev")
        return wf, cur_wal.header.generation, cur_wal.header.base_seq - 1

    @staticmethod
    def _damaged(path: str, cause: Exception) -> IntegrityError:
        if isinstance(cause, IntegrityError):
            return cause
        return FrameError(f"malformed snapshot: {cause}", path)
