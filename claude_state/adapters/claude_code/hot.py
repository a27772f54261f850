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
  (:func:`scan_fields`: any JSON encoding, any key order, nested values before the keys,
  escapes), the event is redacted if the literal prefilter finds a possible secret, and
  appended durably to ``sessions/<sid>.wal`` as the agent sent it. For ``PreToolUse``
  the paused-workflow gate ``sessions/<sid>.gate`` is checked (one failed ``open`` when
  absent). Nothing is parsed and no plugin runs: plugins receive the event later, in
  order, from the journal (``claude_state.plugins.dispatch``).
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

__all__ = [
    "COLD_EVENTS",
    "HotConf",
    "handle",
    "main",
    "read_hot_conf",
    "scan_field",
    "scan_fields",
]

#: Events that need parsing, plugins or an answer; everything else is appended only.
COLD_EVENTS = frozenset(
    ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "PreCompact", "SessionEnd")
)
DEFAULT_INLINE_LIMIT = 256 * 1024
HOT_CONF = "hot.conf"
LOG_NAME = "hook.log"
LOG_MAX = 1 << 20  # rotate hook.log at 1 MiB: malformed input must not fill the disk

#: The top-level fields the hot path reads.
_FIELDS = ("hook_event_name", "session_id")


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


# -- the byte scanner ------------------------------------------------------------------------
#
# Finding two top-level string fields must cost neither a JSON parser (``json`` imports
# ``re``, ~10 ms) nor Python work per byte or per string of a 256 KiB tool output. So the
# scanner's work on the whole input is a few C-level passes, and its Python work is on
# the *skeleton*: the document with every string's content cut out, which for a tool
# event is a few hundred bytes whatever the size of the outputs it carries.
#
# 1. Escaped backslashes, then escaped quotes, are overwritten with two NUL bytes (same
#    length, so offsets still match the input): every ``"`` left delimits a string.
# 2. ``split(b'"')``: the even parts are outside strings, the odd parts string contents.
# 3. The skeleton (the outside parts joined by ``$``, one per string) is checked token by
#    token: between structural characters only ``$``, JSON numbers, ``true``, ``false``,
#    ``null`` and JSON whitespace. Then its grammar, by rewriting with ``bytes.replace``:
#    a key (``$:``) becomes ``K``, any value ``#``, and ``K#`` -> ``P``, ``P,P`` -> ``P``,
#    ``#,#`` -> ``#``, ``{P}``, ``{}``, ``[#]``, ``[]`` -> ``#`` are applied until nothing
#    changes. An object ends as ``#``, anything else gets stuck (each round pairs keys
#    with their values first, so the list rule never takes an object's value).
# 4. The wanted keys are looked up among the string contents (``list.index``; a key
#    written with ``\\u`` escapes is decoded), kept when followed by ``:`` at depth 1
#    (bracket counts of the skeleton before them), and their values decoded.
#
# The answer is what ``json.loads(raw, strict=False)`` gives for each field when it is a
# string, else None (absent, not a string, or the key more than once at the top level);
# the whole answer is None when the bytes are not UTF-8 or not a JSON object. The content
# of the strings it does not return is not examined (a raw control character or an
# unknown escape letter there, which strict JSON forbids, moves no string's boundary):
# the event is then recorded as sent, and its readers report it.
# ``tests/test_hot_scanner.py`` holds it to that on random documents and mutations.

_JSON_WS = b" \t\n\r"
_NOT_CONTROL = bytes(range(32, 256))
_STRUCTURAL = b"{}[],:"
_SCALAR_CHARS = b"0123456789-+.eEtruefalsn"
#: structural characters -> space, to split the skeleton into its scalar tokens
_TOKENIZE = bytes.maketrans(_STRUCTURAL, b" " * len(_STRUCTURAL))
#: characters of numbers and literals -> ``#``, the marker of a value
_TO_HASH = bytes.maketrans(_SCALAR_CHARS, b"#" * len(_SCALAR_CHARS))
_LITERALS = frozenset((b"$", b"true", b"false", b"null"))
_HEX = "0123456789abcdefABCDEF"
#: nesting the scanner follows (events nest a few levels; orjson stops at 1024)
_MAX_DEPTH = 64
_RUNS = tuple((b",".join([c] * n), c) for c in (b"P", b"#") for n in (8, 2))
_SHORT_ESCAPES = {
    0x22: '"',
    0x5C: "\\",
    0x2F: "/",
    0x62: "\b",
    0x66: "\f",
    0x6E: "\n",
    0x72: "\r",
    0x74: "\t",
}


def _is_number(tok: bytes) -> bool:
    """True when *tok* is a JSON number: ``-?(0|[1-9]\\d*)(\\.\\d+)?([eE][+-]?\\d+)?``."""
    i, n = 0, len(tok)
    if i < n and tok[i] == 0x2D:  # -
        i += 1
    if i >= n:
        return False
    if tok[i] == 0x30:  # 0
        i += 1
    elif 0x31 <= tok[i] <= 0x39:
        while i < n and 0x30 <= tok[i] <= 0x39:
            i += 1
    else:
        return False
    if i < n and tok[i] == 0x2E:  # .
        i += 1
        j = i
        while i < n and 0x30 <= tok[i] <= 0x39:
            i += 1
        if i == j:
            return False
    if i < n and tok[i] in b"eE":
        i += 1
        if i < n and tok[i] in b"+-":
            i += 1
        j = i
        while i < n and 0x30 <= tok[i] <= 0x39:
            i += 1
        if i == j:
            return False
    return i == n


def _unescape(content: bytes) -> str | None:
    """The value of a JSON string's raw *content* (between its quotes), escapes decoded
    as ``json.loads`` decodes them (lone surrogates included); None when malformed."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("\\", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if j + 1 >= n:
            return None
        c = text[j + 1]
        if c != "u":
            short = _SHORT_ESCAPES.get(ord(c))
            if short is None:
                return None
            out.append(short)
            i = j + 2
            continue
        hexa = text[j + 2 : j + 6]
        if len(hexa) != 4 or hexa.strip(_HEX):
            return None
        code = int(hexa, 16)
        i = j + 6
        if 0xD800 <= code < 0xDC00 and text[i : i + 2] == "\\u":
            low = text[i + 2 : i + 6]
            if len(low) == 4 and not low.strip(_HEX):
                lo = int(low, 16)
                if 0xDC00 <= lo < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
        out.append(chr(code))
    return "".join(out)


def _valid_skeleton(skeleton: bytes) -> bool:
    """True when *skeleton* (a JSON text with each string replaced by ``$``) is a JSON
    object: tokens checked one by one, the grammar by rewriting (see above)."""
    if skeleton.translate(None, _NOT_CONTROL).translate(None, _JSON_WS):
        return False  # a control character outside strings (JSON allows only whitespace)
    tokens = set(skeleton.translate(_TOKENIZE).split()) - _LITERALS
    # integers without a leading zero are most numbers: only the others are parsed
    for tok in [t for t in tokens if not t.isdigit() or (t[0] == 0x30 and len(t) > 1)]:
        if not _is_number(tok):
            return False
    s = skeleton.translate(_TO_HASH)
    while s.find(b"##") >= 0:  # one '#' per number or literal
        s = s.replace(b"##", b"#")
    s = s.translate(None, _JSON_WS)  # two values apart become '##' (or '$#'): stuck below
    if s[:1] != b"{":
        return False
    s = s.replace(b"$:", b"K").replace(b"$", b"#")
    if s.find(b":") >= 0:
        return False  # a colon after anything but a string
    for _ in range(_MAX_DEPTH):  # each round takes one level of nesting off
        t = s.replace(b"K#", b"P")
        for run, one in _RUNS:  # long lists first: eight items a pass, then two
            while t.find(run) >= 0:
                t = t.replace(run, one)
        t = t.replace(b"{P}", b"#").replace(b"{}", b"#").replace(b"[#]", b"#").replace(b"[]", b"#")
        if t == s:
            return s == b"#"
        s = t
    return False  # nested deeper than any hook event: the cold path's parser decides


def scan_fields(raw: bytes, names: tuple[str, ...]) -> tuple[str | None, ...] | None:
    """The top-level string values of *names* in the JSON object *raw*, found without a
    JSON parser: each is what ``json.loads(raw, strict=False)[name]`` gives when that is
    a string, else None (absent, not a string, or the key occurs more than once at the
    top level). The whole answer is None when *raw* is not a UTF-8 JSON object, so the
    caller falls back to a real parser. How, and what it does not check: the notes above.
    """
    body = raw.strip(_JSON_WS)
    if body[:1] != b"{" or body[-1:] != b"}":
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    escaped = body.find(b"\\") >= 0
    clean = body.replace(b"\\\\", b"\0\0").replace(b'\\"', b"\0\0") if escaped else body
    parts = clean.split(b'"')
    if len(parts) % 2 == 0:
        return None  # a string never closed
    outside = parts[0::2]
    strings = parts[1::2]  # as in *clean*: a NUL marks an escaped backslash or quote
    skeleton = b"$".join(outside)
    if skeleton.count(b"$") != len(strings) or not _valid_skeleton(skeleton):
        return None
    # Where the keys may be: spelled as is (no NUL, so the input's bytes), or escaped.
    hits: list[tuple[int, int]] = []  # (string index, name index)
    for ni, name in enumerate(names):
        spelled = name.encode()
        k = -1
        while True:
            try:
                k = strings.index(spelled, k + 1)
            except ValueError:
                break
            hits.append((k, ni))
    # (a look at each short string, or, when there are many, one find over the input)
    if escaped and (len(strings) * 64 < len(clean) or clean.find(b"\\u00") >= 0):
        # A name is ASCII, so an escaped spelling uses only \u00XX escapes: at most six
        # bytes a character, no NUL (no name holds a backslash or a quote).
        cap = 6 * max(map(len, names), default=0)
        for k in [
            k
            for k, s in enumerate(strings)
            if len(s) <= cap and s.find(b"\\u00") >= 0 and s.find(b"\0") < 0
        ]:
            s = strings[k]
            text = _unescape(s) if s.count(b"\\u") == s.count(b"\\u00") else None
            if text in names:
                hits.append((k, names.index(text)))  # type: ignore[arg-type]
    hits.sort()
    value: list[int] = [-1] * len(names)  # string index of the value; -1: none
    seen = [0] * len(names)
    depth = 0
    counted = 0  # outside parts counted into depth so far
    for k, ni in hits:
        after = outside[k + 1]
        if after.lstrip(_JSON_WS)[:1] != b":":
            continue  # a string value, not a key
        seg = b"".join(outside[counted : k + 1])
        depth += seg.count(b"{") + seg.count(b"[") - seg.count(b"}") - seg.count(b"]")
        counted = k + 1
        if depth == 1:  # a key of the top-level object, not a nested copy
            seen[ni] += 1
            # the value is a string when only ':' stands between the key and the next one
            value[ni] = k + 1 if after.strip(_JSON_WS) == b":" else -1
    result: list[str | None] = []
    for ni in range(len(names)):
        k = value[ni]
        if k < 0 or seen[ni] != 1:
            result.append(None)  # absent, not a string, or duplicated (json keeps the last)
            continue
        content = strings[k]
        if content.find(b"\0") >= 0:  # overwritten escapes: take the input's bytes
            start = sum(map(len, parts[: 2 * k + 1])) + 2 * k + 1
            content = body[start : start + len(content)]
        text = _unescape(content) if escaped else content.decode("utf-8")
        if text is None:
            return None  # an escape JSON does not define: not a JSON document
        result.append(text)
    return tuple(result)


def scan_field(raw: bytes, name: str) -> str | None:
    """The top-level string value of the field *name* (see :func:`scan_fields`)."""
    found = scan_fields(raw, (name,))
    return None if found is None else found[0]


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
    if body.find(b"claude-state") >= 0 and scan_field(body, "tool_name") == "Bash":
        return b""
    return answer


def _fast(raw: bytes, forced: str | None, state: StateDir, conf: HotConf | None) -> bytes | None:
    """Handle a hot event; the answer bytes, or None when the cold path must take it."""
    body = raw.strip(_JSON_WS)
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
