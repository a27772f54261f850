"""The Claude Code hook's entry point, and its hot path.

Claude Code starts one hook process per event, twice per tool call (``PreToolUse`` and
``PostToolUse``), so this module is written against the interpreter's start-up floor
(``docs/hooks.md``, "The hot path"): it imports only ``os``, ``sys``, ``time`` and the
storage modules that append to a session journal (``struct``, ``fcntl``, ``errno``,
``xxhash``). It never imports ``json`` (it imports ``re``, ~10 ms), ``typing``,
``dataclasses``, ``orjson``, ``pluggy``, ``zstandard`` or ``psutil``; a test holds it to
that (``tests/test_hook_hot.py``).

How an event is handled:

* **Hot** (every tool event, notifications, ``SubagentStart``, any event without special
  handling): the top-level event name and session id are found by a byte scanner
  (:mod:`~claude_state.adapters.claude_code.scanner`: any JSON encoding, any key order,
  nested values before the keys, escapes), the event is redacted if the prefilter
  finds a possible secret, and appended durably to ``sessions/<sid>.wal`` as the agent
  sent it. For ``PreToolUse`` the paused-workflow gate ``sessions/<sid>.gate`` is
  checked (one failed ``open`` when absent). Nothing is parsed and no plugin runs:
  plugins receive the event later, in order, from the journal
  (``claude_state.plugins.dispatch``).
* **Cold** (``SessionStart``, ``UserPromptSubmit``, ``Stop``, ``SubagentStop``,
  ``PreCompact``, ``SessionEnd``), and any event the scanner is not certain about
  (not a JSON object, a duplicated key), events above the inline limit, and non-UTF-8
  input: handed to :mod:`claude_state.adapters.claude_code.events`, which parses JSON,
  feeds plugins and writes the agent's context.

Whatever fails is logged to ``<state>/logs/hook.log`` and the process exits 0: the
agent must never fail because of its state recorder (``CLAUDE_STATE_STRICT=1`` makes
internal errors exit 1, for tests and debugging). Nothing but the event's answer is ever
written to stdout.
"""

import os
import sys

from claude_state.adapters.claude_code.hookio import (
    COLD_EVENTS,
    DEFAULT_INLINE_LIMIT,
    HotConf,
    check_gate,
    failed,
    read_hot_conf,
)
from claude_state.adapters.claude_code.scanner import JSON_WS, scan_field, scan_fields
from claude_state.ids import is_valid_id
from claude_state.plugins.redaction_literals import may_contain_secret
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from collections.abc import Mapping

__all__ = [
    "COLD_EVENTS",
    "HotConf",
    "finish",
    "handle",
    "handle_event",
    "main",
    "read_hot_conf",
    "scan_field",
    "scan_fields",
]

#: The top-level fields the hot path reads.
_FIELDS = ("hook_event_name", "session_id")


def _redact(body: bytes, conf: HotConf | None) -> bytes:
    """Redact secrets when the literal prefilter says there may be some (imports ``re``
    only then)."""
    if conf is None:
        if not may_contain_secret(body):
            return body
    elif not conf.always and not may_contain_secret(body, conf.triggers):
        return body
    from claude_state.plugins.redaction import CustomPattern, Redactor

    custom = []
    if conf is not None:
        for name, rx, trig in conf.patterns:
            try:
                custom.append(CustomPattern(name, rx, trig))
            except Exception as exc:
                # Validated when hot.conf was written. Recording the event unredacted
                # could leak the secret the user asked to hide, so fail (logged) instead.
                raise RuntimeError(f"custom redaction pattern {name!r}: {exc}") from None
    return Redactor(custom).redact_json_bytes(body)


def _fast(raw: bytes, forced: str | None, state: StateDir, conf: HotConf | None) -> bytes | None:
    """Handle a hot event; the answer bytes, or None when the cold path must take it."""
    body = raw.strip(JSON_WS)
    if len(body) > (conf.inline_limit if conf is not None else DEFAULT_INLINE_LIMIT):
        return None
    fields = scan_fields(body, _FIELDS)
    if fields is None:
        return None  # not certain (malformed, non-UTF-8...): the cold path parses it
    event, sid = fields
    if event is None or not event.isalpha() or event in COLD_EVENTS:
        return None
    if forced is not None and forced != event:
        return None
    if sid is None or not is_valid_id(sid):
        return None
    body = _redact(body, conf)
    journal.append(state, sid, [journal.wrap(body)])
    if event == "PreToolUse" and conf is not None and conf.block_paused:
        return check_gate(state, sid, body)
    return b""


def handle(
    raw: bytes, forced_event: str | None = None, env: "Mapping[str, str] | None" = None
) -> tuple[int, bytes]:
    """Handle one hook input: ``(exit code, stdout bytes)``. Never raises.

    :param forced_event: the event named on the command line (``claude-state hook
        EVENT``); None takes ``hook_event_name`` from the input.
    """
    code, out, _ = handle_event(raw, forced_event, env)
    return code, out


def handle_event(
    raw: bytes, forced_event: str | None = None, env: "Mapping[str, str] | None" = None
) -> tuple[int, bytes, bool]:
    """:func:`handle`, plus whether the hot path took the event (see :func:`finish`)."""
    env = os.environ if env is None else env
    state: StateDir | None = None
    try:
        state = StateDir.resolve(env=env)
        conf = read_hot_conf(state.root)
        out = None if conf is not None and conf.stale() else _fast(raw, forced_event, state, conf)
        if out is not None:
            return 0, out, True
        from claude_state.adapters.claude_code.events import handle_cold

        code, answer = handle_cold(raw, forced_event, state, env)
        return code, answer, False
    except BaseException as exc:  # KeyboardInterrupt included: the agent must go on
        return failed(state, exc, env, "hook"), b"", False


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):  # closed or absent stdin
        return b""


def finish(code: int, out: bytes, hot: bool) -> None:
    """Write the answer and end the process with *code*.

    After a hot event the process ends with ``os._exit``: the event is in the journal,
    fsynced, its files closed, and the hot path starts no thread and registers no
    ``atexit`` handler, so the interpreter's finalization (tearing down every module,
    a last garbage collection) has nothing left to do but costs ~4 ms of a ~35 ms hook
    here, every tool call, twice. After a cold event ``sys.exit`` runs it as usual:
    plugins may rely on ``atexit`` and buffered files.
    """
    if out:
        try:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            pass  # the agent stopped listening; the event is recorded already
    if hot:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # closed or absent: nothing buffered to lose
                pass
        os._exit(code)
    sys.exit(code)


def main(forced_event: str | None = None) -> None:
    """Run the hook: stdin -> state -> stdout; exits the process."""
    finish(*handle_event(_read_stdin(), forced_event))
