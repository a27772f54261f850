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
  handling): the event name and session id are found by a byte scanner (Claude Code
  writes compact JSON), the event is redacted if the literal prefilter finds a possible
  secret, and appended durably to ``sessions/<sid>.wal`` as the agent sent it. For
  ``PreToolUse`` the paused-workflow gate ``sessions/<sid>.gate`` is checked (one failed
  ``open`` when absent). Nothing is parsed and no plugin runs: plugins receive the event
  later, in order, from the journal (``claude_state.plugins.dispatch``).
* **Cold** (``SessionStart``, ``UserPromptSubmit``, ``Stop``, ``SubagentStop``,
  ``PreCompact``, ``SessionEnd``), and any event the scanner is not certain about,
  events above the inline limit, and non-UTF-8 input: handed to
  :mod:`claude_state.adapters.claude_code.events`, which parses JSON, feeds plugins and
  writes the agent's context.

Whatever fails is logged to ``<state>/logs/hook.log`` and the process exits 0: the
agent must never fail because of its state recorder (``CLAUDE_STATE_STRICT=1`` makes
internal errors exit 1, for tests and debugging). Nothing but the event's answer is ever
written to stdout.
"""

from __future__ import annotations

import os
import sys
import time

from claude_state.ids import is_valid_id
from claude_state.plugins.redaction_literals import may_contain_secret
from claude_state.storage import journal, safeio
from claude_state.storage.layout import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from collections.abc import Mapping

__all__ = ["COLD_EVENTS", "HotConf", "handle", "main", "read_hot_conf", "scan_field"]

#: Events that need parsing, plugins or an answer; everything else is appended only.
COLD_EVENTS = frozenset(
    ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "PreCompact", "SessionEnd")
)
DEFAULT_INLINE_LIMIT = 256 * 1024
HOT_CONF = "hot.conf"
LOG_NAME = "hook.log"
LOG_MAX = 1 << 20  # rotate hook.log at 1 MiB: malformed input must not fill the disk

_EVENT_KEY = b'"hook_event_name":"'
_SESSION_KEY = b'"session_id":"'
_BASH = b'"tool_name":"Bash"'


class HotConf:
    """What the hot path needs from the project config (``<state>/hot.conf``).

    Written by the cold path (:func:`claude_state.plugins.config.sync_hot_conf`) in plain
    ``key=value`` lines, so reading it costs one ``open`` and no JSON parser.
    """

    __slots__ = (
        "inline_limit",
        "block_paused",
        "patterns",
        "triggers",
        "always",
        "config",
        "stamp",
    )

    def __init__(self) -> None:
        self.inline_limit = DEFAULT_INLINE_LIMIT
        self.block_paused = False
        #: ``(name, regex, triggers)`` of each custom redaction pattern.
        self.patterns: list[tuple[str, str, tuple[str, ...]]] = []
        self.triggers: tuple[bytes, ...] = ()
        self.always = False
        #: the project config this digest was made from, and its mtime (ns) then
        self.config: str | None = None
        self.stamp = 0

    def stale(self) -> bool:
        """True when the project config changed since this digest was written (one
        ``stat``): the cold path then handles the event and rewrites the digest."""
        if self.config is None:
            return False
        try:
            now = os.stat(self.config).st_mtime_ns
        except OSError:
            now = 0
        return now != self.stamp


def read_hot_conf(root: str) -> HotConf | None:
    """Parse ``<root>/hot.conf``; None when there is none (all defaults)."""
    try:  # a symlink, FIFO or device there is ignored, never waited on (safeio)
        data = safeio.read_regular(os.path.join(root, HOT_CONF))
    except Exception:  # absent, or a foreign object (ForeignObjectError): defaults
        return None
    conf = HotConf()
    triggers: list[bytes] = []
    for line in data.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key == "inline_limit" and value.isdigit():
            conf.inline_limit = int(value)
        elif key == "block_tools_when_paused":
            conf.block_paused = value == "1"
        elif key == "config":
            conf.config = value
        elif key == "config_mtime" and value.isdigit():
            conf.stamp = int(value)
        elif key == "pattern":
            parts = value.split("\t")
            if len(parts) >= 2:
                trig = tuple(t.lower() for t in parts[2:] if t)
                conf.patterns.append((parts[0], parts[1], trig))
                if trig:
                    triggers.extend(t.encode() for t in trig)
                else:
                    conf.always = True
    conf.triggers = tuple(triggers)
    return conf


def scan_field(raw: bytes, key: bytes) -> str | None:
    """The string value of a top-level field, found without a JSON parser, or None.

    *key* is ``b'"name":"'``. The answer is only given when it is certain: the key
    occurs exactly once, right after ``{`` or ``,`` (compact JSON, so not inside a string
    value, where its quotes would be escaped), before any ``{`` but the first (so at the
    top level, not in a nested object), and the value is short, ASCII and free of
    escapes. Anything else returns None and the caller falls back to a real parser.
    """
    i = raw.find(key)
    if i <= 0 or raw[i - 1] not in b"{,":
        return None
    if raw.find(b"{", 1, i) >= 0:
        # An object opens before the key: it may be a nested copy (e.g. inside
        # tool_input) while the top-level key is written another way (a space after
        # the colon, an escape) or is absent. Claude Code writes session_id and
        # hook_event_name before any nested value, so this costs nothing there.
        return None
    start = i + len(key)
    if raw.find(key, start) >= 0:
        return None  # a nested copy (e.g. inside tool_input): ambiguous
    end = raw.find(b'"', start, start + 130)
    if end < 0:
        return None
    value = raw[start:end]
    if b"\\" in value or not value.isascii():
        return None
    return value.decode("ascii")


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


def check_gate(state: StateDir, sid: str, body: bytes) -> bytes:
    """The deny answer for a ``PreToolUse`` while the session's workflow is paused.

    The gate file holds the complete JSON answer (written by the cold path with a real
    JSON encoder), so the hot path copies bytes. A ``claude-state`` command run through
    Bash is always let through: it is how the agent resumes the workflow.
    """
    try:
        answer = safeio.read_regular(os.path.join(state.sessions, sid + ".gate"))
    except Exception:  # absent, or a foreign object (safeio): no gate
        return b""
    if body.find(_BASH) >= 0 and body.find(b"claude-state") >= 0:
        return b""
    return answer


def _fast(raw: bytes, forced: str | None, state: StateDir, conf: HotConf | None) -> bytes | None:
    """Handle a hot event; the answer bytes, or None when the cold path must take it."""
    body = raw.strip()
    if len(body) < 2 or body[0] != 0x7B or body[-1] != 0x7D:
        return None
    if len(body) > (conf.inline_limit if conf is not None else DEFAULT_INLINE_LIMIT):
        return None
    event = scan_field(body, _EVENT_KEY)
    if event is None or not event.isalpha() or event in COLD_EVENTS:
        return None
    if forced is not None and forced != event:
        return None
    sid = scan_field(body, _SESSION_KEY)
    if sid is None or not is_valid_id(sid):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the cold path repairs it, logs it, and records it
    body = _redact(body, conf)
    journal.append(state, sid, [journal.wrap(body)])
    if event == "PreToolUse" and conf is not None and conf.block_paused:
        return check_gate(state, sid, body)
    return b""


def log(state: StateDir | None, message: str) -> None:
    """Append one line to ``<state>/logs/hook.log`` (never raises)."""
    t = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
    line = f"{stamp} pid={os.getpid()} {message}\n".encode("utf-8", "replace")
    if state is None:
        try:
            sys.stderr.buffer.write(b"claude-state hook: " + line)
        except Exception:  # no usable stderr: nowhere left to report to
            return
        return
    # Never through a symlink or into a FIFO, and never creating a missing state
    # directory (or project): then the line goes to stderr (storage/safeio.py).
    if not safeio.append_line(os.path.join(state.root, "logs"), LOG_NAME, line, LOG_MAX):
        try:
            sys.stderr.buffer.write(b"claude-state hook: " + line)
        except Exception:  # no usable stderr: nowhere left to report to
            return


def failed(state: StateDir | None, exc: BaseException, env: Mapping[str, str], what: str) -> int:
    """Log an internal error; the exit code (0, or 1 with ``CLAUDE_STATE_STRICT=1``)."""
    detail = f"{type(exc).__name__}: {exc}"
    if env.get("CLAUDE_STATE_DEBUG") == "1":
        import traceback

        detail += "\n" + "".join(traceback.format_exception(exc))
    log(state, f"internal error ({what}): {detail}")
    return 1 if env.get("CLAUDE_STATE_STRICT") == "1" else 0


def handle(
    raw: bytes, forced_event: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """Handle one hook input: ``(exit code, stdout bytes)``. Never raises.

    :param forced_event: the event named on the command line (``claude-state hook
        EVENT``); None takes ``hook_event_name`` from the input.
    """
    env = os.environ if env is None else env
    state: StateDir | None = None
    try:
        state = StateDir.resolve(env=env)
        conf = read_hot_conf(state.root)
        out = None if conf is not None and conf.stale() else _fast(raw, forced_event, state, conf)
        if out is not None:
            return 0, out
        from claude_state.adapters.claude_code.events import handle_cold

        return handle_cold(raw, forced_event, state, env)
    except BaseException as exc:  # KeyboardInterrupt included: the agent must go on
        return failed(state, exc, env, "hook"), b""


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):  # closed or absent stdin
        return b""


def main(forced_event: str | None = None) -> None:
    """Run the hook: stdin -> state -> stdout; exits the process."""
    code, out = handle(_read_stdin(), forced_event)
    if out:
        try:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            pass  # the agent stopped listening; the event is recorded already
    sys.exit(code)
