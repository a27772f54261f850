"""What a hook process reads and writes besides the journal, hot or cold alike.

* the hot settings (``<state>/hot.conf``, :class:`HotConf`): the few config values the
  hot path needs, as ``key=value`` lines written by the cold path
  (:func:`claude_state.plugins.config.sync_hot_conf`), read with one ``open``;
* the paused-workflow gate (``sessions/<sid>.gate``, :func:`check_gate`);
* ``<state>/logs/hook.log`` (:func:`log`) and the exit policy for internal errors
  (:func:`failed`);
* which events need the cold path (:data:`COLD_EVENTS`).

Kept apart from :mod:`~claude_state.adapters.claude_code.hot` (the entry point) so the
cold path (:mod:`~claude_state.adapters.claude_code.events`) imports these without
importing the entry point that imports it: no import cycle. Standard library and the
storage modules only: it is on the hot path.
"""

import os
import sys
import time

from claude_state.adapters.claude_code.scanner import scan_field
from claude_state.storage import safeio
from claude_state.storage.layout import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs start-up time
    from collections.abc import Mapping

__all__ = [
    "COLD_EVENTS",
    "DEFAULT_INLINE_LIMIT",
    "HOT_CONF",
    "HotConf",
    "check_gate",
    "failed",
    "log",
    "read_hot_conf",
]

#: Events that need parsing, plugins or an answer; everything else is appended only.
COLD_EVENTS = frozenset(
    ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "PreCompact", "SessionEnd")
)
DEFAULT_INLINE_LIMIT = 256 * 1024
HOT_CONF = "hot.conf"
LOG_NAME = "hook.log"
LOG_MAX = 1 << 20  # rotate hook.log at 1 MiB: malformed input must not fill the disk


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


def read_hot_conf(root: str) -> "HotConf | None":
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


def failed(state: StateDir | None, exc: BaseException, env: "Mapping[str, str]", what: str) -> int:
    """Log an internal error; the exit code (0, or 1 with ``CLAUDE_STATE_STRICT=1``)."""
    detail = f"{type(exc).__name__}: {exc}"
    if env.get("CLAUDE_STATE_DEBUG") == "1":
        import traceback

        detail += "\n" + "".join(traceback.format_exception(exc))
    log(state, f"internal error ({what}): {detail}")
    return 1 if env.get("CLAUDE_STATE_STRICT") == "1" else 0
