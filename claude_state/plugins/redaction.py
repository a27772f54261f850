"""Secret redaction: hook events lose their secrets before any byte reaches disk.

Tool inputs and outputs carry whatever the agent touched: ``cat .env``, a ``curl`` with
an ``Authorization`` header, a database URL with its password. The journal, blobs and
checkpoints are plain files that get copied, exported and attached to bug reports, so
the secrets are replaced with ``[REDACTED:<kind>]`` on the way in (issues #5, #15).

What counts as a secret is decided by shape, in
:func:`claude_state.plugins.redaction_literals.scan` (key names, assignment and flag
shapes, URL credentials, private key blocks, token-shaped high-entropy strings; see
there), which the hook's hot path also uses as its prefilter, so the two agree.

Redaction works on the raw JSON bytes of an event and touches only the *contents of
string values*: each string token is decoded, scanned, and a changed string is
re-encoded. The document therefore stays valid JSON whatever a rule or a custom pattern
matches (a custom pattern cannot break an escape sequence or eat a quote), and bytes
that need no change are copied through untouched. A value under a key that names a
secret (``"password"``, ``"pwd"``, ``"api_key"``, ``"accessToken"``...) is replaced as a
whole, numbers included.

Cost: the hook's hot path first runs the prefilter
(:func:`~claude_state.plugins.redaction_literals.may_contain_secret`, no ``re``); this
module, which imports ``re`` and ``json``, loads only when the prefilter fires or custom
patterns without literal triggers are configured.

Custom patterns come from the project config (``docs/configuration.md``): a name and a
Python regular expression; when the expression has a group named ``secret`` only that
group is replaced, else the whole match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

from claude_state.errors import ConfigError
from claude_state.plugins.redaction_literals import key_value_secret, may_contain_secret, scan

__all__ = [
    "SENSITIVE_KEYS",
    "CustomPattern",
    "Redactor",
    "default_redactor",
]

#: Key names whose values are secrets as a whole (examples: the rule is
#: :func:`~claude_state.plugins.redaction_literals.sensitive_key`, on the key's last
#: word, so ``DB_PASS``, ``clientSecret``, ``AccountKey`` count and ``max_tokens`` not).
SENSITIVE_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "pass",
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

# One JSON string token (unrolled loop: fast on long strings), and whether a ``:``
# follows it (then it is an object key).
_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?', re.S)
# A JSON literal that is not a string (number, true, false, null), after a key's colon.
_LITERAL = re.compile(rb"\s*(-?[0-9][0-9.eE+\-]*|true|false|null)")


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
    """The built-in secret shapes plus custom patterns, applied to text or JSON bytes."""

    def __init__(self, custom: Sequence[CustomPattern] = ()) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = [(c.name, c.regex) for c in custom]
        self._extra = tuple(t.encode() for c in custom for t in c.triggers)
        # A custom pattern without literal triggers must see every string.
        self._always = any(not c.triggers for c in custom)

    @property
    def always(self) -> bool:
        """True when no prefilter can rule a string out (custom patterns)."""
        return self._always

    def may_match(self, raw: bytes) -> bool:
        """The prefilter: False means nothing in the JSON document *raw* would change."""
        return self._always or may_contain_secret(raw, self._extra)

    def redact_text(self, text: str) -> str:
        """*text* with every secret replaced by ``[REDACTED:<kind>]``."""
        data = text.encode("utf-8", "surrogatepass")
        spans = scan(b'"' + data + b'"')
        if spans:
            data = _apply(data, spans, 1)
            text = data.decode("utf-8", "surrogatepass")
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
        lexically. A value under a key that names a secret is replaced whole (a number
        too, as a string). :returns: *raw* itself when nothing changed.
        """
        if not self.may_match(raw):
            return raw
        out: list[bytes] = []
        last = 0
        key: bytes | None = None
        key_end = -1
        for m in _STRING.finditer(raw):
            content = m.group(1)
            start, end = m.start(), m.start() + len(content) + 2
            if start < last:
                continue  # inside a literal already replaced
            if m.group(2) is not None:  # an object key
                key = _decode_bytes(content)
                key_end = m.end()
                if key is not None:
                    lit = _LITERAL.match(raw, key_end)
                    if lit is not None:
                        kind = key_value_secret(key, lit.group(1), quoted=False)
                        if kind is not None:
                            out.append(raw[last : lit.start(1)])
                            out.append(b'"[REDACTED:' + kind.encode() + b']"')
                            last = lit.end(1)
                        key = None
                continue
            text = _decode_bytes(content)
            if text is None:  # a broken escape: the event is malformed; be safe
                out.append(raw[last:start])
                out.append(b'"[REDACTED:unparsed]"')
                last = end
                key = None
                continue
            if key is not None and not raw[key_end:start].strip():
                kind = key_value_secret(key, text, quoted=True)
                key = None
                if kind is not None:
                    out.append(raw[last:start])
                    out.append(b'"[REDACTED:' + kind.encode() + b']"')
                    last = end
                    continue
            key = None
            new = self.redact_text(text.decode("utf-8", "surrogatepass"))
            if new.encode("utf-8", "surrogatepass") != text:
                out.append(raw[last:start])
                out.append(_encode_string(new))
                last = end
        if not out:
            return raw
        out.append(raw[last:])
        return b"".join(out)


def _apply(data: bytes, spans: list[tuple[int, int, str]], shift: int) -> bytes:
    """*data* with the *spans* (offsets *shift* too far: the scan saw a wrapping quote)
    replaced by markers; overlapping spans merge under the first one's kind."""
    n = len(data)
    merged: list[tuple[int, int, str]] = []
    for s, e, kind in sorted(spans):
        s, e = max(s - shift, 0), min(e - shift, n)
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            ms, me, mkind = merged[-1]
            merged[-1] = (ms, max(me, e), mkind)
        else:
            merged.append((s, e, kind))
    parts: list[bytes] = []
    last = 0
    for s, e, kind in merged:
        parts.append(data[last:s])
        parts.append(b"[REDACTED:" + kind.encode() + b"]")
        last = e
    parts.append(data[last:])
    return b"".join(parts)


def _encode_string(text: str) -> bytes:
    """*text* as a JSON string token in UTF-8. A lone surrogate (Node cuts strings inside
    an emoji) is written as a ``\\u`` escape: raw, it would make the bytes invalid
    UTF-8 and the event unreadable."""
    try:
        return json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text).encode("ascii")


def _group_replacer(kind: str) -> Callable[[re.Match[str]], str]:
    return lambda m: _sub_group(m, kind)


def _sub_group(m: re.Match[str], kind: str) -> str:
    secret = m.group("secret")
    if secret is None or not secret:
        return m.group(0)
    s, e = m.span("secret")
    base = m.start()
    whole = m.group(0)
    return whole[: s - base] + f"[REDACTED:{kind}]" + whole[e - base :]


def _decode_bytes(content: bytes) -> bytes | None:
    """The UTF-8 bytes of a JSON string token's *content* (lone surrogates kept)."""
    try:
        value = json.loads(b'"' + content + b'"')
    except ValueError:
        return None
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", "surrogatepass")


_DEFAULT: Redactor | None = None


def default_redactor() -> Redactor:
    """The built-in rules only (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Redactor()
    return _DEFAULT
