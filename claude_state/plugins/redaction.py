"""Secret redaction: hook events lose their secrets before any byte reaches disk.

Tool inputs and outputs carry whatever the agent touched: ``cat .env``, a ``curl`` with
an ``Authorization`` header, a database URL with its password. The journal, blobs and
checkpoints are plain files that get copied, exported and attached to bug reports, so
the secrets are replaced with ``[REDACTED:<kind>]`` on the way in (issue #5).

Redaction works on the raw JSON bytes of an event and touches only the *contents of
string values*: each string token is decoded, the patterns run on the decoded text, and
a changed string is re-encoded. The document therefore stays valid JSON whatever a
pattern matches (a custom pattern cannot break an escape sequence or eat a quote), and
bytes that need no change are copied through untouched. A string value under a key
that names a secret (``"password"``, ``"api_key"``, ``"accessToken"``...) is replaced as
a whole.

Cost: the hook's hot path first runs the literal prefilter of
:mod:`claude_state.plugins.redaction_literals` (no ``re``); this module, which imports
``re`` and ``json``, loads only when the prefilter fires or custom patterns without
literal triggers are configured.

Custom patterns come from the project config (``docs/configuration.md``): a name and a
Python regular expression; when the expression has a group named ``secret`` only that
group is replaced, else the whole match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

from claude_state.errors import ConfigError
from claude_state.plugins.redaction_literals import may_contain_secret

__all__ = [
    "BUILTIN_PATTERNS",
    "SENSITIVE_KEYS",
    "CustomPattern",
    "Redactor",
    "default_redactor",
]

#: ``(kind, regex)``: the built-in secret shapes. Each match contains a literal of
#: :data:`~claude_state.plugins.redaction_literals.TRIGGERS` (checked by a test).
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    ),
    ("anthropic_api_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai_api_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=\-]{16,})"),
    (
        "authorization",
        r"(?i)\bauthorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer|token|digest)?\s*"
        r"(?P<secret>[^\s'\"]{8,})",
    ),
    ("url_password", r"(?i)\b[a-z][a-z0-9+.\-]*://[^/\s:@'\"]+:(?P<secret>[^/\s@'\"]+)@"),
    (
        "assignment",
        r"(?i)\b[\w.\-]*(?:password|passwd|secret|token|api[_\-]?key|access[_\-]?key"
        r"|credentials?)['\"]?\s*[:=]\s*['\"]?(?P<secret>[^\s'\",;&|<>(){}\[\]]{6,})",
    ),
    (
        "cli_flag",
        r"(?i)(?:^|\s)--?(?:password|passwd|token|secret|api-key|apikey)\s+"
        r"['\"]?(?P<secret>[^\s'\"\-][^\s'\"]{5,})",
    ),
)

#: Lower-cased key endings whose string values are secrets as a whole.
SENSITIVE_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "credential",
    "credentials",
    "private_key",
    "privatekey",
    "access_key",
    "accesskey",
)
_SENSITIVE_KEYS_B = tuple(k.encode() for k in SENSITIVE_KEYS)

# One JSON string token (unrolled loop: fast on long strings), and whether a ``:``
# follows it (then it is an object key).
_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?', re.S)


def _placeholder(value: str) -> bool:
    """Values that look like a secret's place but are not one (``$VAR``, ``1234``...)."""
    v = value.strip("'\"")
    return (
        not v
        or v.isdigit()
        or v.startswith(("$", "%", "<", "***", "[REDACTED"))
        or v.lower() in ("null", "none", "true", "false", "undefined", "changeme")
    )


class CustomPattern:
    """A user pattern from the config: *name*, compiled *regex*, optional *triggers*.

    :raises ConfigError: when the regex does not compile or the name is unusable.
    """

    __slots__ = ("name", "regex", "triggers")

    def __init__(self, name: str, regex: str, triggers: Iterable[str] = ()) -> None:
        if (
            not isinstance(name, str)
            or not name
            or not all(c.isalnum() or c in "_-." for c in name)
        ):
            raise ConfigError(f"redaction pattern name {name!r}: use letters, digits, _ - .")
        if not isinstance(regex, str) or "\n" in regex or "\t" in regex:
            raise ConfigError(f"redaction pattern {name!r}: regex must be one line of text")
        try:
            self.regex = re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"redaction pattern {name!r} does not compile: {exc}") from None
        self.name = name
        self.triggers = tuple(t.lower() for t in triggers if isinstance(t, str) and t)


class Redactor:
    """Built-in plus custom patterns, applied to text, JSON bytes or parsed values."""

    def __init__(self, custom: Sequence[CustomPattern] = ()) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = [
            (kind, re.compile(rx)) for kind, rx in BUILTIN_PATTERNS
        ]
        self._patterns.extend((c.name, c.regex) for c in custom)
        self._extra = tuple(t.encode() for c in custom for t in c.triggers)
        # A custom pattern without literal triggers must see every string.
        self._always = any(not c.triggers for c in custom)

    @property
    def always(self) -> bool:
        """True when no literal prefilter can rule a string out (custom patterns)."""
        return self._always

    def may_match(self, raw: bytes) -> bool:
        """The prefilter: False means no pattern can match anything in *raw*."""
        return self._always or may_contain_secret(raw, self._extra)

    def redact_text(self, text: str) -> str:
        """*text* with every secret replaced by ``[REDACTED:<kind>]``."""
        for kind, rx in self._patterns:
            if "secret" in rx.groupindex:
                text = rx.sub(_group_replacer(kind), text)
            else:
                text = rx.sub(f"[REDACTED:{kind}]", text)
        return text

    def redact_json_bytes(self, raw: bytes) -> bytes:
        """Redact the string values of a JSON document given as bytes.

        Malformed JSON is handled too (this runs before parsing, so a malformed event
        never sends its secrets to the log or the disk): string tokens are found
        lexically. :returns: *raw* itself when nothing changed.
        """
        if not self.may_match(raw):
            return raw
        out: list[bytes] = []
        last = 0
        key_kind: str | None = None
        key_end = -1
        for m in _STRING.finditer(raw):
            content = m.group(1)
            if m.group(2) is not None:  # an object key
                low = content.lower()
                key_kind = None
                for k in _SENSITIVE_KEYS_B:
                    if low.endswith(k):
                        key_kind = k.decode()
                        break
                key_end = m.end()
                continue
            start, end = m.start(), m.start() + len(content) + 2
            if key_kind is not None and not raw[key_end:start].strip():
                text = _decode(content)
                if text is None or not _placeholder(text):
                    out.append(raw[last:start])
                    out.append(b'"[REDACTED:' + key_kind.encode() + b']"')
                    last = end
                key_kind = None
                continue
            key_kind = None
            if not self.may_match(content):
                continue
            text = _decode(content)
            if text is None:  # a broken escape: the event is malformed; be safe
                out.append(raw[last:start])
                out.append(b'"[REDACTED:unparsed]"')
                last = end
                continue
            new = self.redact_text(text)
            if new != text:
                out.append(raw[last:start])
                out.append(json.dumps(new, ensure_ascii=False).encode("utf-8", "surrogatepass"))
                last = end
        if not out:
            return raw
        out.append(raw[last:])
        return b"".join(out)


def _group_replacer(kind: str) -> Callable[[re.Match[str]], str]:
    return lambda m: _sub_group(m, kind)


def _sub_group(m: re.Match[str], kind: str) -> str:
    secret = m.group("secret")
    if secret is None or _placeholder(secret):
        return m.group(0)
    s, e = m.span("secret")
    base = m.start()
    whole = m.group(0)
    return whole[: s - base] + f"[REDACTED:{kind}]" + whole[e - base :]


def _decode(content: bytes) -> str | None:
    try:
        value = json.loads(b'"' + content + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


_DEFAULT: Redactor | None = None


def default_redactor() -> Redactor:
    """The built-in patterns only (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Redactor()
    return _DEFAULT
