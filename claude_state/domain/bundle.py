"""Export and import of a session: one checksummed bundle file.

A bundle is a single frame (``Kind.BUNDLE``, ``docs/format.md``): the frame header's
checksums cover the whole file, its length field catches truncation and appended bytes,
and its payload is one JSON document::

    {"format": "claude-state-bundle", "version": 1, "created_at": ISO,
     "session_id": SID,
     "session": <stored session record>, "lease": <lease document or null>,
     "journal": [[seq, base64 payload], ...],          every journal record, in order
     "workflows": [<workflow document>, ...],         loaded (snapshot + WAL replayed)
     "checkpoints": [{"workflow_id", "id", "frame": base64 of the checkpoint file}],
     "blobs": {digest: base64 of the blob's bytes}}   every blob referenced above

Checkpoints are carried as their files, byte for byte (each is itself a verified frame,
and incremental ones keep their whole chain since every checkpoint of a workflow is
exported); blobs carry their content and are checked against their digest.

Import verifies everything before writing anything, and assumes a forger who
recomputes every checksum: the frame and its declared expanded size (a limit checked
before decompressing, :func:`max_bundle_bytes`), the document's shape and every field's
type, every id (no path can escape the state directory), duplicate entries, every
embedded frame and blob digest, every checkpoint rebuilt as a restore would and found
to be a document of the workflow it is filed under, that every referenced blob is
present, the frames to be written encoded, and that nothing would overwrite different
existing data (:class:`ConflictError`; importing the same bundle twice is a no-op).
Only then are files written: blobs, checkpoints, workflows, journal, lease, and the
session record last.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from claude_state.domain.userdata import collect_refs
from claude_state.errors import (
    BundleError,
    ClaudeStateError,
    ConflictError,
    FrameError,
    IntegrityError,
    NotFoundError,
)
from claude_state.ids import is_valid_id, validate_id
from claude_state.storage import blobs as blobmod
from claude_state.storage import frame, journal, wal
from claude_state.storage.atomic import atomic_write
from claude_state.storage.layout import StateDir, _makedirs

__all__ = [
    "FORMAT",
    "VERSION",
    "ImportResult",
    "export_bytes",
    "export_session",
    "import_bundle",
    "verify_bundle",
]

FORMAT = "claude-state-bundle"
VERSION = 1
#: Default limit on a bundle's expanded size, in MiB (see :func:`max_bundle_bytes`).
MAX_BUNDLE_MB = 256


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise BundleError(f"bundle: {what} is not base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BundleError(f"bundle: {what} is not valid base64") from None


# -- export -----------------------------------------------------------------------------------


def export_bytes(state: StateDir, sid: str) -> bytes:
    """The bundle of session *sid* as bytes. :raises NotFoundError: unknown session."""
    from claude_state.domain import leases
    from claude_state.domain.recovery import _session_workflow_ids, _workflow_store
    from claude_state.domain.sessions import SessionStore

    validate_id(sid, "session id")
    store = SessionStore(state)
    rec = store.load(sid)
    lease = leases.read(state, sid)
    wfs = _workflow_store(state)
    workflows = []
    checkpoints = []
    refs: set[str] = blobmod.collect_refs(rec.to_dict())
    for wid in _session_workflow_ids(state, rec, wfs):
        try:
            doc = wfs.load(wid).to_dict()
        except NotFoundError:
            continue
        workflows.append(doc)
        collect_refs(doc, refs)
        cdir = state.checkpoint_dir(wid)
        try:
            names = sorted(os.listdir(cdir))
        except FileNotFoundError:
            names = []
        for name in names:
            cid = name[: -len(".checkpoint")]
            if not name.endswith(".checkpoint") or not is_valid_id(cid):
                continue
            with open(state.checkpoint(wid, cid), "rb") as f:
                raw = f.read()
            _h, cdoc = frame.decode_doc(raw, frame.Kind.CHECKPOINT, state.checkpoint(wid, cid))
            collect_refs(cdoc, refs)
            checkpoints.append({"workflow_id": wid, "id": cid, "frame": _b64(raw)})
    bs = blobmod.BlobStore(state)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": _now_iso(),
        "session_id": sid,
        "session": rec.to_dict(),
        "lease": None if lease is None else lease.to_dict(),
        "journal": [[seq, _b64(p)] for seq, p in journal.read(state, sid, 0)],
        "workflows": workflows,
        "checkpoints": checkpoints,
        "blobs": {h: _b64(bs.get(h)) for h in sorted(refs)},
    }
    return frame.encode_doc(frame.Kind.BUNDLE, doc)


def _now_iso() -> str:
    from claude_state.clock import now_iso

    return now_iso()


def export_session(state: StateDir, sid: str, path: str) -> int:
    """Write the bundle of *sid* to *path* atomically. :returns: its size in bytes."""
    data = export_bytes(state, sid)
    tmp_dir = os.path.dirname(os.path.abspath(path)) or "."
    atomic_write(path, data, tmp_dir)
    return len(data)


# -- verification ---------------------------------------------------------------------------


@dataclass
class _Verified:
    session_id: str
    session: dict[str, Any]
    lease: dict[str, Any] | None
    journal: list[tuple[int, bytes]]
    workflows: list[Any]
    checkpoints: list[tuple[str, str, bytes]]
    blobs: dict[str, bytes]
    #: The frames the import writes, encoded during verification: nothing about them
    #: (a generation that is not a number, a value that cannot be serialised) can fail
    #: once the first file is written.
    session_frame: bytes = b""
    lease_frame: bytes | None = None


@dataclass
class ImportResult:
    """What an import did: ``imported`` is False when the same data was already there."""

    session_id: str
    imported: bool
    workflows: list[str] = field(default_factory=list)
    checkpoints: int = 0
    blobs: int = 0
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "imported": self.imported,
            "workflows": list(self.workflows),
            "checkpoints": self.checkpoints,
            "blobs": self.blobs,
            "events": self.events,
        }


def _need(doc: dict[str, Any], key: str, kind: type) -> Any:
    v = doc.get(key)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise BundleError(f"bundle: field {key!r} missing or of the wrong type")
    return v


def max_bundle_bytes() -> int:
    """The largest bundle, expanded, that an import accepts (bytes).

    A bundle is one compressed frame: a few kilobytes can declare hundreds of megabytes,
    and an import holds the expanded document (and the values decoded from it) in
    memory. The frame's header declares the expanded size, checked against this limit
    before anything is decompressed (and decompression stops at the declared size), so
    a forged bundle costs at most a few times this much memory.
    ``CLAUDE_STATE_MAX_BUNDLE_MB`` changes it (default :data:`MAX_BUNDLE_MB`).
    """
    text = os.environ.get("CLAUDE_STATE_MAX_BUNDLE_MB", "")
    try:
        mb = int(text) if text else MAX_BUNDLE_MB
    except ValueError:
        mb = MAX_BUNDLE_MB
    return max(1, mb) << 20


def _int_field(doc: dict[str, Any], key: str, what: str) -> int:
    v = doc.get(key, 0)
    if type(v) is not int or v < 0:
        raise BundleError(f"bundle: {what} {key!r} is not a non-negative integer: {v!r}")
    return v


def _check_session_fields(doc: dict[str, Any]) -> None:
    """Every field of the session record of the type its default has.

    ``SessionRecord.from_dict`` checks what the fold needs; an import must also be sure
    that what it writes can be read back and rendered (a ``revision`` of ``"x"`` once
    failed after half the bundle was written).
    """
    import dataclasses

    from claude_state.domain.sessions import SessionRecord

    for f in dataclasses.fields(SessionRecord):
        if f.name not in doc:
            continue
        v = doc[f.name]
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        kind = str(f.type)
        if isinstance(default, bool):
            ok = type(v) is bool
        elif isinstance(default, int):
            ok = type(v) is int and v >= 0
        elif isinstance(default, (list, dict, str)):
            ok = type(v) is type(default)
        elif v is None:
            ok = True
        elif "float" in kind:  # optional times
            ok = type(v) in (int, float)
        elif "int" in kind:  # optional pid
            ok = type(v) is int
        else:  # optional text
            ok = type(v) is str
        if not ok:
            raise BundleError(f"bundle: session field {f.name!r} has a malformed value {v!r}")


def _check_chains(
    bodies: dict[tuple[str, str], dict[str, Any]], parents: dict[tuple[str, str], str | None]
) -> None:
    """Every checkpoint rebuilt, as a restore would: its chain ends at a full checkpoint
    (no loop), every delta fits its parent, and the result is a valid document of the
    workflow the checkpoint is filed under. :raises BundleError:"""
    from claude_state.domain.delta import patch
    from claude_state.domain.model import Workflow

    docs: dict[tuple[str, str], Any] = {}
    for key in bodies:
        chain = [key]
        while chain[-1] not in docs and parents[chain[-1]] is not None:
            nxt = (key[0], str(parents[chain[-1]]))
            if nxt in chain:
                raise BundleError(f"bundle: checkpoint {key[0]}/{key[1]}: its chain loops")
            chain.append(nxt)
        for link in reversed(chain):
            if link in docs:
                continue
            body = bodies[link]
            try:
                if body["incremental"]:
                    doc = patch(docs[(link[0], str(parents[link]))], body["delta"])
                else:
                    doc = body["doc"]
                named = Workflow.from_dict(doc).id
            except ClaudeStateError as exc:
                raise BundleError(f"bundle: checkpoint {link[0]}/{link[1]}: {exc}") from None
            if named != link[0]:
                raise BundleError(
                    f"bundle: checkpoint {link[0]}/{link[1]} holds workflow {named!r}"
                )
            docs[link] = doc


def verify_bundle(data: bytes) -> _Verified:
    """Check every byte and field of a bundle; nothing is written.

    Everything an import depends on is checked here, before its first write: the frame
    and its declared size, the document's shape and every field's type, ids, duplicate
    entries, that every checkpoint is one of its own workflow (and its parent travels
    with it), every blob's digest and presence, and the frames to be written encode.

    :raises BundleError: truncated, altered, oversized or malformed in any way.
    """
    from claude_state.domain.checkpoints import _check_body
    from claude_state.domain.leases import LeaseRecord
    from claude_state.domain.model import Workflow
    from claude_state.domain.sessions import SessionRecord

    limit = max_bundle_bytes()
    if len(data) > limit:
        raise BundleError(f"bundle is {len(data)} bytes, over the limit of {limit}")
    try:
        header = frame.decode_header(data[: frame.HEADER_SIZE])
        if header.raw_len > limit:
            raise BundleError(
                f"bundle expands to {header.raw_len} bytes, over the limit of {limit}"
                " (CLAUDE_STATE_MAX_BUNDLE_MB)"
            )
        _h, doc = frame.decode_doc(data, frame.Kind.BUNDLE)
    except FrameError as exc:
        raise BundleError(f"bundle is damaged: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError("not a claude-state bundle")
    if doc.get("version") != VERSION:
        raise BundleError(f"unsupported bundle version {doc.get('version')!r}")
    sid = _need(doc, "session_id", str)
    if not is_valid_id(sid):
        raise BundleError(f"bundle: invalid session id {sid!r}")
    try:
        session = SessionRecord.from_dict(_need(doc, "session", dict))
        lease_doc = doc.get("lease")
        if lease_doc is not None and LeaseRecord.from_dict(lease_doc).session_id != sid:
            raise BundleError("bundle: the lease names another session")
        if session.id != sid:
            raise BundleError("bundle: the session record names another session")
        wf_list = [Workflow.from_dict(w) for w in _need(doc, "workflows", list)]
    except BundleError:
        raise
    except ClaudeStateError as exc:
        raise BundleError(f"bundle: malformed content: {exc}") from None
    session_doc = session.to_dict()
    _check_session_fields(session_doc)
    wf_ids: set[str] = set()
    for wf in wf_list:
        if not is_valid_id(wf.id):
            raise BundleError(f"bundle: invalid workflow id {wf.id!r}")
        if wf.id in wf_ids:
            raise BundleError(f"bundle: workflow {wf.id} appears twice")
        wf_ids.add(wf.id)
    records: list[tuple[int, bytes]] = []
    for item in _need(doc, "journal", list):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], int)
            or isinstance(item[0], bool)
        ):
            raise BundleError("bundle: malformed journal record")
        if records and item[0] != records[-1][0] + 1:
            raise BundleError("bundle: journal sequence gap")
        if item[0] < 1:
            raise BundleError("bundle: journal sequence numbers start at 1")
        records.append((item[0], _unb64(item[1], "journal record")))
    cps: list[tuple[str, str, bytes]] = []
    parents: dict[tuple[str, str], str | None] = {}
    bodies: dict[tuple[str, str], dict[str, Any]] = {}
    refs: set[str] = blobmod.collect_refs(session_doc)
    for wf in wf_list:
        collect_refs(wf.to_dict(), refs)
    for item in _need(doc, "checkpoints", list):
        if not isinstance(item, dict):
            raise BundleError("bundle: malformed checkpoint entry")
        wid, cid = item.get("workflow_id"), item.get("id")
        if (
            not isinstance(wid, str)
            or not isinstance(cid, str)
            or not is_valid_id(wid)
            or not is_valid_id(cid)
            or wid not in wf_ids
        ):
            raise BundleError(f"bundle: invalid checkpoint {wid!r}/{cid!r}")
        if (wid, cid) in parents:
            raise BundleError(f"bundle: checkpoint {wid}/{cid} appears twice")
        raw = _unb64(item.get("frame"), f"checkpoint {cid}")
        try:
            _ch, cdoc = frame.decode_doc(raw, frame.Kind.CHECKPOINT)
            # filed under its own workflow and name, and shaped like a checkpoint
            _check_body(cdoc, wid, cid, f"checkpoint {wid}/{cid}")
        except FrameError as exc:
            raise BundleError(f"bundle: checkpoint {cid} is damaged: {exc}") from None
        except IntegrityError as exc:
            raise BundleError(f"bundle: checkpoint {wid}/{cid} is malformed: {exc}") from None
        _int_field(cdoc, "revision", f"checkpoint {cid}")
        parents[(wid, cid)] = cdoc.get("parent") if cdoc["incremental"] else None
        bodies[(wid, cid)] = cdoc
        collect_refs(cdoc, refs)
        cps.append((wid, cid, raw))
    for (wid, cid), parent in parents.items():
        if parent is not None and (wid, parent) not in parents:
            raise BundleError(f"bundle: checkpoint {wid}/{cid} needs {parent}, not in the bundle")
    _check_chains(bodies, parents)
    blob_map: dict[str, bytes] = {}
    for h, text in _need(doc, "blobs", dict).items():
        if len(h) != 32 or any(c not in "0123456789abcdef" for c in h):
            raise BundleError(f"bundle: invalid blob digest {h!r}")
        content = _unb64(text, f"blob {h}")
        if blobmod.digest(content) != h:
            raise BundleError(f"bundle: blob {h} does not match its digest")
        blob_map[h] = content
    missing = sorted(refs - set(blob_map))
    if missing:
        raise BundleError(f"bundle: {len(missing)} referenced blob(s) missing, e.g. {missing[0]}")
    revision = _int_field(session_doc, "revision", "session")
    lease_frame = None
    if lease_doc is not None:
        epoch = _int_field(lease_doc, "epoch", "lease")
        lease_frame = frame.encode_doc(frame.Kind.LEASE, lease_doc, epoch)
    try:
        session_frame = frame.encode_doc(frame.Kind.SESSION, session_doc, revision)
        for wf in wf_list:
            frame.dumps(wf.to_dict())
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"bundle: content cannot be stored: {exc}") from None
    return _Verified(
        sid, session_doc, lease_doc, records, wf_list, cps, blob_map, session_frame, lease_frame
    )


# -- import -----------------------------------------------------------------------------------


def import_bundle(state: StateDir, data: bytes) -> ImportResult:
    """Verify *data* completely, check for conflicts, then write it into *state*.

    :raises BundleError: damaged or malformed bundle (nothing written).
    :raises ConflictError: the session, a workflow or a checkpoint exists with other
        content (nothing written). Importing identical content again is a no-op.
    """
    from claude_state.domain.recovery import _workflow_store
    from claude_state.domain.sessions import SessionStore

    v = verify_bundle(data)
    state.ensure(sweep=False)
    wfs = _workflow_store(state)
    store = SessionStore(state)
    sid = v.session_id

    # -- conflicts (still nothing written) --
    session_same = False
    if store.exists(sid):
        try:
            existing = store.get_or_new(sid).to_dict()
            same_journal = journal.read(state, sid, 0) == v.journal
        except ClaudeStateError:
            existing, same_journal = {}, False
        if existing != v.session or not same_journal:
            raise ConflictError(f"session {sid} already exists with other content")
        session_same = True
    new_wfs = []
    for wf in v.workflows:
        if wfs.exists(wf.id):
            try:
                same = wfs.load(wf.id).to_dict() == wf.to_dict()
            except ClaudeStateError:
                same = False
            if not same:
                raise ConflictError(f"workflow {wf.id} already exists with other content")
        else:
            new_wfs.append(wf)
    new_cps = []
    for wid, cid, raw in v.checkpoints:
        path = state.checkpoint(wid, cid)
        if os.path.exists(path):
            with open(path, "rb") as f:
                if f.read() != raw:
                    raise ConflictError(f"checkpoint {cid} already exists with other content")
        else:
            new_cps.append((wid, cid, raw))

    result = ImportResult(
        sid,
        imported=not session_same or bool(new_wfs or new_cps),
        workflows=[w.id for w in v.workflows],
        checkpoints=len(v.checkpoints),
        blobs=len(v.blobs),
        events=len(v.journal),
    )
    if not result.imported:
        return result

    # -- writes --
    bs = blobmod.BlobStore(state)
    for content in v.blobs.values():
        bs.put(content)
    for wid, cid, raw in new_cps:
        _makedirs(state.checkpoint_dir(wid))
        atomic_write(state.checkpoint(wid, cid), raw, state.temp)
    for wf in new_wfs:
        wfs.create(wf, escaped=True)  # stored form, as exported
    if not session_same:
        from claude_state.storage.locks import FileLock

        with FileLock(state.session_lock(sid)):
            # Re-checked under the lock the hook's appends take: a session that appeared
            # since the check above (a live agent using this id) must not have its journal
            # replaced. What was written so far is additive (blobs, new checkpoints and
            # workflows) and harmless.
            if store.exists(sid):
                raise ConflictError(
                    f"session {sid} appeared while importing; its journal was left as it is"
                )
            path = state.session_wal(sid)
            base = v.journal[0][0] if v.journal else 1
            wal.create(path, state.temp, kind=wal.KIND_SESSION, generation=1, base_seq=base)
            if v.journal:
                wal.append(path, [p for _s, p in v.journal])
            if v.lease_frame is not None:
                atomic_write(state.lease(sid), v.lease_frame, state.temp)
            atomic_write(state.session_record(sid), v.session_frame, state.temp)
    return result
