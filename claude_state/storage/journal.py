"""A session's event journal: the WAL ``sessions/<id>.wal`` of raw hook events.

Every hook event is made durable here first, before anything interprets it; plugins
and the session record are fed from the journal later (see ``docs/hooks.md``). That
keeps the per-tool-call hook at the interpreter's start-up floor.

A record's payload is one JSON object ``{"t": <receive time, epoch s>, "ev": <event>}``
built by byte concatenation around the event exactly as the agent sent it (after
redaction), so the hot path never parses JSON. An event that turns out not to be
valid JSON is logged and skipped when the journal is read.

Hot path module: stdlib and xxhash only.
"""

import os
import time

from claude_state.storage import wal
from claude_state.storage.layout import StateDir, _makedirs
from claude_state.storage.locks import FileLock
from claude_state.storage.safeio import check_dir, make_dir


def wrap(raw: bytes, t: float | None = None) -> bytes:
    """The journal payload for one raw event (no parsing)."""
    stamp = b"%.6f" % (time.time() if t is None else t)
    return b'{"t":' + stamp + b',"ev":' + raw.strip() + b"}"


def append(state: StateDir, session_id: str, payloads: list[bytes]) -> list[int]:
    """Durably append journal payloads (already wrapped) for a session.

    Takes the session lock, creates the journal on first use, flushes once for all
    *payloads*. :returns: their sequence numbers.

    ``sessions/`` is checked (one ``lstat``) to be a real folder before the lock file
    in it is opened: a symlink there would make every journal and lock land wherever
    it points. :raises ForeignObjectError: it (or ``temp/``, or a file) is foreign.
    """
    path = state.session_wal(session_id)
    if not check_dir(state.sessions):
        # First event of a project: the folders do not exist yet (never the project:
        # _makedirs refuses to create a missing $CLAUDE_PROJECT_DIR).
        _makedirs(state.root, root=True)
        make_dir(state.sessions)
        from claude_state.storage.gitignore import write_gitignore

        write_gitignore(state.root)  # prompts and tool outputs stay out of git
    lock = FileLock(state.session_lock(session_id))
    lock.acquire()
    try:
        try:
            return wal.append(path, payloads)
        except FileNotFoundError:
            make_dir(state.temp)
            base = _applied_seq(state.session_record(session_id)) + 1
            wal.create(path, state.temp, kind=wal.KIND_SESSION, generation=1, base_seq=base)
            return wal.append(path, payloads)
    finally:
        lock.release()


def applied_seq(record_path: str) -> int:
    """The journal cursor (``applied_seq``) of the session record at *record_path*; 0
    when it is absent or does not verify."""
    return _applied_seq(record_path)


def _applied_seq(record_path: str) -> int:
    """A journal created while its session record exists (the journal was deleted)
    must number above what the record applied, or new events would be taken for ones
    already applied. Rare (once per journal), so the frame decoder is imported here
    only: the hot path never pays for it otherwise."""
    try:
        os.lstat(record_path)
    except OSError:
        return 0
    from claude_state.errors import ClaudeStateError
    from claude_state.storage import frame
    from claude_state.storage.safeio import read_regular

    try:
        _h, body = frame.decode_doc(read_regular(record_path), frame.Kind.SESSION, record_path)
    except (OSError, ClaudeStateError):
        return 0
    seq = body.get("applied_seq") if isinstance(body, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else 0


def read(state: StateDir, session_id: str, after_seq: int = 0) -> list[tuple[int, bytes]]:
    """Verified journal records with ``seq > after_seq`` (lock-free); [] if none."""
    try:
        return wal.read(state.session_wal(session_id), after_seq).records
    except FileNotFoundError:
        return []
