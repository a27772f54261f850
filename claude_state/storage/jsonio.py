"""Decoding JSON written by the agent: hook input and the journal payloads built from it.

Node (Claude Code) cuts long strings by UTF-16 code unit, so a cut inside an emoji
leaves a lone surrogate, which ``JSON.stringify`` writes as an escape: ``"done
\\ud83c"``. That is valid JSON text (RFC 8259 allows any ``\\uXXXX``) but names no
Unicode character, and orjson refuses it. Refusing would lose the whole event (a cold
event is dropped, a hot one is journaled and then skipped by every reader), so every
reader of hook input and journal payloads decodes through :func:`loads`: orjson first,
and only when orjson refuses a document holding a surrogate escape, the same document
with each *lone* surrogate escape replaced by ``\\ufffd`` (U+FFFD, the replacement
character, as a UTF-8 decoder does for a broken byte sequence). A well-formed pair
(``\\ud83c\\udf89``) is kept; an escaped backslash before ``u`` (``\\\\ud83c``) is
text, not an escape, and is kept too.

Not on the hook's hot path (which never parses JSON); ``re`` is imported only when a
document needs the repair.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["JSONDecodeError", "loads", "replace_lone_surrogates"]

JSONDecodeError = orjson.JSONDecodeError

_PATTERN: Any = None


def _pattern() -> Any:
    global _PATTERN
    if _PATTERN is None:
        import re

        # Left to right, an escape is consumed whole, so "\\\\" (an escaped backslash)
        # never lets the "u" after it look like the start of an escape.
        _PATTERN = re.compile(
            rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a pair
            rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"  # a lone high or low surrogate
            rb"|\\."  # any other escape, skipped whole
        )
    return _PATTERN


def _fix(m: Any) -> bytes:
    whole: bytes = m.group(0)
    if m.group(1) is not None or len(whole) == 2:
        return whole
    return b"\\ufffd"


def replace_lone_surrogates(data: bytes) -> bytes:
    """*data* with every lone UTF-16 surrogate escape replaced by ``\\ufffd``."""
    return bytes(_pattern().sub(_fix, data))


def loads(data: bytes | str) -> Any:
    """Parse JSON like ``orjson.loads``, accepting lone surrogate escapes (see module doc).

    :raises orjson.JSONDecodeError: (a ``ValueError``) when the document is not JSON
        even after the repair; the message is orjson's for the original document.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        if b"\\u" not in raw:
            raise
        fixed = replace_lone_surrogates(raw)
        if fixed == raw:
            raise
        try:
            return orjson.loads(fixed)
        except orjson.JSONDecodeError:
            pass
        raise
