"""The hook's cold path: events that need parsing, plugins, the lease or an answer.

Entered from :func:`claude_state.adapters.claude_code.hot.handle` for ``SessionStart``,
``UserPromptSubmit``, ``Stop``, ``SubagentStop``, ``PreCompact`` and ``SessionEnd``, and
for any event the hot path could not take (not certainly parsed, above the inline
limit, not UTF-8).

Every event is first made durable in the session journal, exactly as the hot path
does (redacted, large values moved to blobs), so it survives whatever happens next;
only then does the handler act:

========================  ==================================================================
``SessionStart``           lease on the agent process (``$CLAUDE_PID`` or the ancestry);
                           a resumed crashed session is recovered first; plugins fed; the
                           crash scan; ``additionalContext`` naming crashed sessions and
                           (on resume/compact) this session's unfinished workflows
``UserPromptSubmit``       plugins fed; paused-workflow gate refreshed
``Stop``                   plugins fed (turn checkpoint); the ``keep_working`` policy
``SubagentStop``           plugins fed
``PreCompact``             plugins fed (``pre_compact`` checkpoint)
``SessionEnd``             plugins fed; session ended and lease released, only when the
                           sender holds the lease (1.5 s budget)
========================  ==================================================================
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from claude_state.adapters.claude_code.hookio import COLD_EVENTS, check_gate, failed, log
from claude_state.errors import ClaudeStateError, LeaseHeldError
from claude_state.ids import is_valid_id
from claude_state.plugins.config import Config, load_config, sync_hot_conf
from claude_state.storage import journal, jsonio, safeio
from claude_state.storage.layout import StateDir

__all__ = ["BLOB_VALUE_THRESHOLD", "Event", "handle_cold"]

#: Top-level values of an oversized event larger than this go to the blob store.
BLOB_VALUE_THRESHOLD = 16 * 1024
_KEEP_INLINE = frozenset(
    {"session_id", "hook_event_name", "transcript_path", "cwd", "tool_name", "tool_use_id"}
)


@dataclass
class Event:
    """One cold-path event being handled."""

    state: StateDir
    env: Mapping[str, str]
    config: Config
    name: str
    sid: str
    data: dict[str, Any]
    seq: int
    t: float
    #: ``SessionStart``/``SessionEnd``: how the sender stands to the lease (one of
    #: ``sessions.LEASE_ROLES``), its agent pid, and the epoch of the lease it holds.
    lease_role: str | None = None
    by: int | None = None
    lease_epoch: int | None = None


def _answer(event: str, fields: dict[str, Any]) -> bytes:
    return orjson.dumps({"hookSpecificOutput": {"hookEventName": event, **fields}})


def _repair_utf8(state: StateDir, body: bytes) -> bytes:
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError as exc:
        log(
            state,
            f"input is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
            "invalid bytes replaced with U+FFFD and the event recorded",
        )
        return body.decode("utf-8", "replace").encode("utf-8")


def _externalize(state: StateDir, ev: dict[str, Any]) -> dict[str, Any]:
    from claude_state.storage.blobs import BlobStore

    blobs = BlobStore(state)
    state.ensure(sweep=False)
    out: dict[str, Any] = {}
    for key, value in ev.items():
        out[key] = value if key in _KEEP_INLINE else blobs.externalize(value, BLOB_VALUE_THRESHOLD)
    return out


def _parse(
    raw: bytes, forced: str | None, state: StateDir, config: Config
) -> tuple[dict[str, Any], bytes] | None:
    """Redacted, parsed, validated event and its journal bytes; None after logging."""
    body = raw.strip()
    if not body:
        log(state, "empty hook input ignored")
        return None
    body = _repair_utf8(state, body)
    from claude_state.plugins.redaction import Redactor

    body = Redactor(config.custom_patterns()).redact_json_bytes(body)
    try:
        ev = jsonio.loads(body)
    except orjson.JSONDecodeError as exc:
        log(state, f"malformed hook input ({len(raw)} bytes) ignored: {exc}")
        return None
    if not isinstance(ev, dict):
        log(state, f"hook input is JSON but not an object ({type(ev).__name__}); ignored")
        return None
    changed = False
    name = ev.get("hook_event_name")
    if forced is not None and name != forced:
        ev["hook_event_name"] = name = forced
        changed = True
    if not isinstance(name, str) or not name.isalpha():
        log(state, f"hook input without a usable hook_event_name ({name!r}); ignored")
        return None
    sid = ev.get("session_id")
    if not is_valid_id(sid):
        shown = repr(sid)[:60]
        log(state, f"{name}: invalid session_id {shown}; event ignored")
        return None
    if len(body) > config.inline_limit:
        ev = _externalize(state, ev)
        changed = True
        log(
            state,
            f"{name} {sid}: {len(body)} bytes over the inline limit; large values stored as blobs",
        )
    return ev, (orjson.dumps(ev) if changed else body)


def handle_cold(
    raw: bytes, forced_event: str | None, state: StateDir, env: Mapping[str, str]
) -> tuple[int, bytes]:
    """Record and handle one event: ``(exit code, stdout bytes)``. Never raises."""
    t = time.time()
    try:
        config = load_config(state, env)
    except ClaudeStateError as exc:
        log(state, f"config ignored: {exc}")
        config = _last_good_config(state)
    except Exception as exc:
        return failed(state, exc, env, "config"), b""
    try:
        parsed = _parse(raw, forced_event, state, config)
    except Exception as exc:
        return failed(state, exc, env, "parse"), b""
    if parsed is None:
        return 0, b""
    ev, payload = parsed
    name, sid = str(ev["hook_event_name"]), str(ev["session_id"])
    role: tuple[str, int | None, int | None] | None = None
    try:
        if name in _LEASE_EVENTS:
            role = _lease_role(state, sid, name, env)
            from claude_state.domain.sessions import wrap_event

            wrapped = wrap_event(payload, t, lease_role=role[0], by=role[1])
        else:
            wrapped = journal.wrap(payload, t)
        (seq,) = journal.append(state, sid, [wrapped])
    except Exception as exc:
        return failed(state, exc, env, f"{name} {sid}: journal append"), b""
    event = Event(state, env, config, name, sid, ev, seq, t)
    if role is not None:
        event.lease_role, event.by, event.lease_epoch = role
    handler = _HANDLERS.get(name, _on_other)
    try:
        with _stdout_to_stderr():  # plugins run here; stdout is the agent's answer only
            return 0, handler(event)
    except Exception as exc:
        return failed(state, exc, env, f"{name} {sid}"), b""


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever runs inside to stderr, at the Python level (``print``) and the file
    descriptor level (``os.write(1)``, subprocesses): the agent parses the hook's stdout
    as its answer, and a plugin's print would make it non-JSON."""
    import sys

    saved = -1
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr: discard instead
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, 1)
            finally:
                os.close(null)
    except (OSError, ValueError):
        if saved >= 0:
            os.close(saved)
            saved = -1
    old = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = old
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if saved >= 0:
            try:
                os.dup2(saved, 1)
            finally:
                os.close(saved)


def _last_good_config(state: StateDir) -> Config:
    """The defaults, plus the hot settings of the last valid config (``hot.conf``).

    A config that stopped parsing (a typo while editing it) must not switch off the
    custom redaction patterns the user asked for: events would then reach the disk with
    those secrets, and ``hot.conf`` would be rewritten without them.
    """
    from claude_state.adapters.claude_code.hookio import read_hot_conf

    config = Config()
    conf = read_hot_conf(state.root)
    if conf is not None:
        config.inline_limit = conf.inline_limit
        config.block_tools_when_paused = conf.block_paused
        config.patterns = [
            {"name": name, "regex": rx, "triggers": list(trig)} for name, rx, trig in conf.patterns
        ]
    return config


# -- handlers -------------------------------------------------------------------------------


def _drain(e: Event) -> Any:
    """Feed plugins (logged, never fatal); the caught-up session record or None."""
    from claude_state.plugins.dispatch import drain

    try:
        return drain(e.state, e.sid, config=e.config).record
    except Exception as exc:
        log(e.state, f"{e.name} {e.sid}: plugin dispatch failed: {type(exc).__name__}: {exc}")
        return None


def _sync(e: Event, record: Any) -> None:
    from claude_state.plugins.policies import sync_gate

    try:
        sync_hot_conf(e.state, e.config, e.env)
        sync_gate(e.state, e.sid, e.config, record)
    except Exception as exc:
        log(e.state, f"{e.name} {e.sid}: policy files not refreshed: {exc!r}")


def _on_other(e: Event) -> bytes:
    """A hot-type event that came the slow way: recorded; the gate still applies; the
    hot path's digest of the config is refreshed (it may be why this came slowly)."""
    try:
        sync_hot_conf(e.state, e.config, e.env)
    except Exception as exc:
        log(e.state, f"{e.name} {e.sid}: hot.conf not refreshed: {exc!r}")
    if e.name == "PreToolUse" and e.config.block_tools_when_paused:
        return check_gate(e.state, e.sid, orjson.dumps(e.data))
    return b""


_LEASE_EVENTS = frozenset({"SessionStart", "SessionEnd"})


def _caller_pid(name: str, env: Mapping[str, str]) -> int:
    """The agent process this event comes from.

    ``SessionStart`` takes the lease, so it needs a live process
    (:func:`~claude_state.domain.procinfo.find_agent_pid`). ``SessionEnd`` only asks
    *who* sent it, and Claude Code may be exiting while its ``SessionEnd`` hook runs: a
    well-formed ``$CLAUDE_PID`` names the sender even when that process just died (the
    variable is inherited from the agent that ran this hook).
    """
    from claude_state.domain.procinfo import find_agent_pid

    raw = env.get("CLAUDE_PID", "").strip()
    if name == "SessionEnd" and raw.isascii() and raw.isdigit() and 1 < len(raw) <= 10:
        pid = int(raw)
        if 1 < pid < 2**31:
            return pid
    return find_agent_pid(env)[0]


def _lease_role(
    state: StateDir, sid: str, name: str, env: Mapping[str, str]
) -> tuple[str, int | None, int | None]:
    """``(role, sender pid, epoch held by the sender)`` of a ``SessionStart``/``SessionEnd``.

    Decided before the event is journaled, so the fold knows whether the sender owns the
    session (``claude_state.domain.sessions``, :data:`~claude_state.domain.sessions.LEASE_ROLES`).
    The answer cannot go stale in between for the cases that matter: while the sender
    holds the lease nobody else can take it (its owner is alive: it is running this
    hook), and a sender that does not hold it does not take it in this hook.

    Owner means the held lease names the sender's pid on this host with the same start
    token (a pid reused by another process is not the owner); a sender that already
    exited (no token to read) is matched by pid. A damaged lease is no evidence of
    anything: the sender is treated as a non-owner and nothing is ended.
    """
    from claude_state.domain import leases
    from claude_state.domain.procinfo import hostname, process_start_token
    from claude_state.domain.sessions import ROLE_FREE, ROLE_OTHER, ROLE_OWNER, ROLE_UNOWNED
    from claude_state.domain.staleness import is_stale
    from claude_state.errors import IntegrityError

    try:
        pid: int | None = _caller_pid(name, env)
    except Exception as exc:  # no ancestry readable: unknown sender
        log(state, f"{name} {sid}: sender unknown: {type(exc).__name__}: {exc}")
        pid = None
    try:
        cur = leases.read(state, sid)
    except IntegrityError as exc:
        log(state, f"{name} {sid}: lease unreadable ({exc}); sender treated as a non-owner")
        return ROLE_OTHER, pid, None
    if cur is None:
        return (ROLE_FREE if name == "SessionStart" else ROLE_UNOWNED), pid, None
    owner = cur.info.owner
    if cur.held and pid is not None and owner.pid == pid and owner.host == hostname():
        token = process_start_token(pid)
        if token is None or owner.start_time is None or token == owner.start_time:
            return ROLE_OWNER, pid, cur.epoch
    if name == "SessionStart":
        if not cur.held:
            return ROLE_FREE, pid, None
        v = leases.verdict(cur)
        return (ROLE_FREE if v is not None and is_stale(v) else ROLE_OTHER), pid, None
    return ROLE_OTHER, pid, None


def _take_lease(e: Event) -> None:
    from claude_state.domain.procinfo import ProcessIdentity, find_agent_pid
    from claude_state.domain.sessions import SessionStore

    pid, source = find_agent_pid(e.env)
    try:
        owner = ProcessIdentity.current(pid)
        SessionStore(e.state).start(e.sid, owner, pid_source=source)
    except LeaseHeldError as exc:
        # The same session id is open in another live agent (two terminals resuming
        # it): record, but do not steal the lease from a live process.
        log(e.state, f"SessionStart {e.sid}: lease not taken: {exc}")


def _heartbeat(e: Event) -> None:
    """Refresh the session's lease, if this same agent process still holds it.

    Staleness on the same host is judged by the owner process itself; the heartbeat is
    what keeps a session alive in the eyes of *another* host sharing the state dir (its
    TTL runs out otherwise). A lease broken by a recovery, or held by another process,
    is left alone: a fenced-off session must not revive it.
    """
    from claude_state.domain import leases
    from claude_state.domain.procinfo import ProcessIdentity, find_agent_pid

    try:
        rec = leases.read(e.state, e.sid)
        if rec is None or not rec.held:
            return
        pid, _source = find_agent_pid(e.env)
        owner = rec.info.owner
        if owner.pid != pid or owner.start_time != ProcessIdentity.current(pid).start_time:
            return
        leases.heartbeat(e.state, e.sid, rec.epoch)
    except Exception as exc:  # a missed heartbeat is not worth failing the agent for
        log(e.state, f"{e.name} {e.sid}: lease heartbeat skipped: {type(exc).__name__}: {exc}")


def _crash_plans(e: Event) -> list[dict[str, Any]]:
    from claude_state.domain import recovery

    plans = []
    for sid in recovery.find_crashed(e.state):
        if sid == e.sid:
            continue
        try:
            plan = recovery.plan(e.state, sid)
        except ClaudeStateError as exc:
            log(e.state, f"SessionStart {e.sid}: no plan for crashed session {sid}: {exc}")
            plans.append({"session_id": sid, "last_activity": {}, "recoverable_workflows": []})
            continue
        plans.append(plan.to_dict())
        _announce_crash(e, sid, plan)
    return plans


def _announce_crash(e: Event, sid: str, plan: Any) -> None:
    """Fire ``crash_detected`` once per crashed session (marker ``<sid>.crash``)."""
    marker = os.path.join(e.state.sessions, sid + ".crash")
    if os.path.exists(marker):
        return
    from claude_state.plugins import notify

    notify("crash_detected", state=e.state, session_id=sid, plan=plan)
    fd = safeio.open_regular(marker, os.O_WRONLY | os.O_CREAT)  # never through a symlink
    os.close(fd)


def _on_session_start(e: Event) -> bytes:
    source = e.data.get("source")
    source = source if isinstance(source, str) else "startup"
    left_running: list[dict[str, Any]] = []
    if source in ("resume", "startup", "fork"):
        # A crashed session being resumed in a new process: recover it first, so its
        # interrupted steps are ready to retry and the old epoch is fenced off. What its
        # dead agent left running is told to the new one (nobody else will see it: the
        # session is no longer crashed once resumed).
        try:
            from claude_state.domain.recovery import recover_for_resume

            resumed = recover_for_resume(e.state, e.sid)
            if resumed is not None:
                left_running = list(resumed.orphans)
        except Exception as exc:
            log(e.state, f"SessionStart {e.sid}: recovery before resume failed: {exc!r}")
    record = _drain(e)
    try:
        _take_lease(e)
    except Exception as exc:
        log(e.state, f"SessionStart {e.sid}: lease not taken: {type(exc).__name__}: {exc}")
    _sync(e, record)
    crashed = _crash_plans(e)
    unfinished: list[dict[str, Any]] = []
    if source in ("resume", "compact", "fork", "clear") or record is not None and record.events > 1:
        from claude_state.domain.recovery import unfinished_workflows

        try:
            unfinished = unfinished_workflows(e.state, e.sid, record)
        except ClaudeStateError as exc:
            log(e.state, f"SessionStart {e.sid}: unfinished workflows unknown: {exc}")
    if not crashed and not unfinished and not left_running:
        return b""
    from claude_state.adapters.claude_code.context import build_context

    text = build_context(
        crashed,
        session_id=e.sid,
        source=source,
        unfinished=unfinished,
        left_running=left_running,
    )
    return _answer("SessionStart", {"additionalContext": text}) if text else b""


def _on_prompt(e: Event) -> bytes:
    _heartbeat(e)
    _sync(e, _drain(e))
    return b""


def _on_stop(e: Event) -> bytes:
    _heartbeat(e)
    record = _drain(e)
    _sync(e, record)
    if not e.config.keep_working or record is None:
        return b""
    from claude_state.plugins.policies import keep_working_answer

    return keep_working_answer(e.state, record, e.data)


def _on_drain_only(e: Event) -> bytes:
    _heartbeat(e)
    _drain(e)
    return b""


def _on_session_end(e: Event) -> bytes:
    """End the session and release its lease, if (and only if) the sender owns it.

    A ``SessionEnd`` from a process that does not hold the lease (a second terminal on
    a live session; a ``claude --resume`` that failed, which fires only ``SessionEnd``)
    is recorded as a foreign event: ending the session would hide a crash from
    ``recover`` or release a live agent's lease, so a later kill went unnoticed. A
    session that never had a lease (a resume of an unknown id) is ended by the fold,
    naming the sender.
    """
    from claude_state.domain.sessions import ROLE_OTHER, ROLE_OWNER, SessionStore

    _drain(e)
    if e.lease_role == ROLE_OWNER:
        reason = e.data.get("reason")
        SessionStore(e.state).end(
            e.sid, reason if isinstance(reason, str) else "other", epoch=e.lease_epoch
        )
    elif e.lease_role == ROLE_OTHER:
        log(
            e.state,
            f"SessionEnd {e.sid} from pid {e.by}, which does not hold the session's lease: "
            "recorded; the session is not ended and the lease is kept",
        )
    return b""


_HANDLERS: dict[str, Callable[[Event], bytes]] = {
    "SessionStart": _on_session_start,
    "UserPromptSubmit": _on_prompt,
    "Stop": _on_stop,
    "SubagentStop": _on_drain_only,
    "PreCompact": _on_drain_only,
    "SessionEnd": _on_session_end,
}
assert set(_HANDLERS) == COLD_EVENTS
