"""User values kept apart from the store's own blob references.

The store replaces a large value by a reference ``{"$blob": digest, "size": n}``
(``storage/blobs.py``) in the same JSON tree that holds the user's values. A user value
of that shape would then be taken for a reference: read back as another blob's content,
or failing every read when the digest does not exist. So every user value is *escaped*
when it enters the store and *unescaped* when it leaves:

* a user object with a key that the store gives a meaning (``$blob``, ``$ref``, the
  escape marker ``$esc`` itself) is wrapped, with its members escaped in turn, in an
  envelope ``{"$esc": {...}}``;
* every other value is kept as it is, so the escaped form of ordinary data is the data
  itself, byte for byte (no format change for existing state directories).

In the escaped form, the only objects with a ``$blob`` key outside an envelope are the
store's own references: :func:`collect_refs` finds exactly those. Escaping needs a walk
of the value only when its serialised bytes contain one of the keys (a C-speed ``in``
test on bytes that the store produces anyway), so ordinary step updates pay nothing.
"""

from __future__ import annotations

from typing import Any

ESC_KEY = "$esc"
BLOB_KEY = "$blob"
#: Keys that give an object a meaning to the store; a user object with one is escaped.
RESERVED = frozenset({BLOB_KEY, "$ref", ESC_KEY})
#: The same keys as they appear in serialised JSON (orjson never escapes ``$``).
_RESERVED_BYTES = tuple(b'"' + k.encode() + b'"' for k in sorted(RESERVED))


def may_need_escape(data: bytes) -> bool:
    """Whether serialised JSON *data* may hold a reserved key (false: nothing to do)."""
    return any(k in data for k in _RESERVED_BYTES)


def escape(value: Any) -> Any:
    """*value* with every object that has a reserved key wrapped in an envelope.

    Returns *value* itself when nothing needed wrapping (no copy).
    """
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            e = escape(v)
            changed = changed or e is not v
            out[k] = e
        if not RESERVED.isdisjoint(value):
            return {ESC_KEY: out}
        return out if changed else value
    if isinstance(value, list):
        items = [escape(v) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def _is_envelope(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get(ESC_KEY)) is dict


def unescape(value: Any) -> Any:
    """The user's value from its escaped form (the inverse of :func:`escape`).

    Returns *value* itself when it holds no envelope (no copy).
    """
    if isinstance(value, dict):
        inner = value[ESC_KEY] if _is_envelope(value) else value
        changed = inner is not value
        out: dict[str, Any] = {}
        for k, v in inner.items():
            u = unescape(v)
            changed = changed or u is not v
            out[k] = u
        return out if changed else value
    if isinstance(value, list):
        items = [unescape(v) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def escape_op(op: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """*op* (a workflow op, serialised as *payload*) with its user values escaped.

    An op's own keys are never reserved, so escaping the whole op escapes exactly the
    values it carries (output, error, data value, agent state, tool call).
    """
    if not may_need_escape(payload):
        return op
    check_data_key(op)
    out: dict[str, Any] = escape(op)
    return out


def check_data_key(op: dict[str, Any]) -> None:
    """Refuse a ``set_data`` op whose key is reserved: the data object's keys are not
    escaped, so ``{"$blob": <digest>}`` as the whole data object would read as a
    reference. :raises InvalidInputError:"""
    key = op.get("key")
    if op.get("op") == "set_data" and key in RESERVED:
        from claude_state.errors import InvalidInputError

        raise InvalidInputError(f"data key {key!r} is reserved by the store")


def check_data_keys(data: dict[str, Any]) -> None:
    """Refuse reserved keys in a new workflow's data (see :func:`check_data_key`)."""
    for key in RESERVED.intersection(data):
        from claude_state.errors import InvalidInputError

        raise InvalidInputError(f"data key {key!r} is reserved by the store")


def is_store_ref(value: Any) -> bool:
    """Whether *value* (in escaped form) is one of the store's blob references."""
    return type(value) is dict and BLOB_KEY in value and len(value) <= 3


def collect_refs(value: Any, out: set[str] | None = None) -> set[str]:
    """Every blob digest the store references in an escaped JSON tree.

    Unlike ``storage.blobs.collect_refs`` it does not look inside envelopes: what is
    there is user data, however much it looks like a reference.
    """
    out = set() if out is None else out
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if _is_envelope(v):
                stack.extend(v[ESC_KEY].values())
            elif is_store_ref(v) and isinstance(v.get(BLOB_KEY), str):
                out.add(v[BLOB_KEY])
            else:
                stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out
