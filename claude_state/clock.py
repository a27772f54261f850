"""Wall-clock helpers: one place that decides how time is written down.

Documents store ISO-8601 UTC strings with milliseconds and a trailing ``Z`` because they
are readable, sort lexically in time order and round-trip through JSON unchanged; float
epoch seconds are used only where arithmetic is needed (durations, lease TTLs).
``datetime`` is imported inside the functions so that importing this module costs nothing
on the hook's hot path.
"""

from __future__ import annotations

import time
from typing import Any

from claude_state.errors import InvalidInputError


def now() -> float:
    """Current time as float epoch seconds (for arithmetic, never stored as text)."""
    return time.time()


def now_iso() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return to_iso(time.time())


def to_iso(epoch: float) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds)."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


_fromisoformat: Any = None


def check_iso(s: str) -> None:
    """Raise unless *s* is an ISO-8601 timestamp :func:`parse_iso` accepts.

    The check every op's timestamp gets before it is applied: parsing alone, without
    the conversion to epoch seconds (a third of :func:`parse_iso`'s cost). The parser is
    bound once, on first use: an ``import`` statement in the function costs ~10 us on
    every call once other work has evicted the interpreter's import state from the CPU
    caches, which is the usual case between two step updates.

    :raises InvalidInputError: when *s* is not a string or not an ISO-8601 timestamp.
    """
    global _fromisoformat
    parse = _fromisoformat
    if parse is None:
        from datetime import datetime

        parse = _fromisoformat = datetime.fromisoformat
    try:
        if isinstance(s, str) and s:
            parse(s)
            return
    except ValueError:
        pass
    raise InvalidInputError(f"invalid timestamp {s!r}: expected ISO-8601 text")


def parse_iso(s: str) -> float:
    """Parse an ISO-8601 timestamp into float epoch seconds.

    Accepts a trailing ``Z`` or an explicit offset; a naive timestamp is read as UTC,
    since that is the only zone claude-state ever writes.

    :raises InvalidInputError: when *s* is not a string or not an ISO-8601 timestamp.
    """
    from datetime import UTC, datetime

    if not isinstance(s, str) or not s:
        raise InvalidInputError(f"invalid timestamp {s!r}: expected ISO-8601 text")
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise InvalidInputError(f"invalid timestamp {s!r}: expected ISO-8601 text") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
