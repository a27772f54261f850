"""Identifier validation and generation.

Ids become file names, so they are checked before any path is built from them
(``docs/cli-contract``: ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``). This module avoids
``re`` on purpose: the hook's hot path validates session ids and ``re`` costs ~10 ms of
interpreter start-up.
"""

import os

from claude_state.errors import InvalidIdError

_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_REST = _FIRST | frozenset("._-")
MAX_ID_LEN = 128


def is_valid_id(value: object) -> bool:
    """True when *value* is a string usable as a workflow, step, checkpoint or session id."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LEN:
        return False
    if value[0] not in _FIRST:
        return False
    return all(c in _REST for c in value)


def validate_id(value: object, what: str = "id") -> str:
    """Return *value* if it is a valid id, else raise :class:`InvalidIdError`.

    :param what: the kind of id, used in the message (``"workflow id"``...).
    :raises InvalidIdError: for anything that could escape its folder or is not a name.
    """
    if not is_valid_id(value):
        raise InvalidIdError(value, what)
    assert isinstance(value, str)
    return value


def new_id(prefix: str = "") -> str:
    """A fresh, sortable, unique id: ``<prefix><time-ms hex><random hex>``.

    Time first so that ids created later sort later in listings.
    """
    import time

    ms = int(time.time() * 1000)
    return f"{prefix}{ms:012x}{os.urandom(5).hex()}"
