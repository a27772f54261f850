"""Structural JSON deltas: what an incremental checkpoint stores instead of a whole document.

A workflow between two checkpoints usually changes a little: one or two steps move, a
data key is set, a few history entries are appended (and, once the history is at its
bound, as many are dropped from its front). Storing the whole document each time costs
the document's size per checkpoint (LangGraph: 50 MB for 100 checkpoints of a state
growing to 1 MB); storing a structural delta costs the size of the change.

The delta is plain JSON so it goes through the same frame codec as everything else. A
delta is an object of one of these shapes (``{}`` means "unchanged")::

    {"r": value}                          replace the value whole
    {"d": {key: delta}, "x": [key, ...]}  object: patch/add these keys, remove those
    {"t": n, "k": m, "l": {"i": delta}, "a": [v, ...]}
                                          array: drop n items from the front, keep the
                                          first m of the rest, patch items by index
                                          (indices after the drop), then append ``a``

``diff`` finds appends (``history``, ``finish_order``, ``tool_calls``), front drops of a
bounded list (``history`` once it holds 200 entries), per-index changes of a list whose
shape holds (``steps``) and per-key changes of objects (``data``, ``metrics``).

Two rules keep it exact and safe:

* Equality is strict JSON equality, not Python's ``==`` (for which ``1 == 1.0 == True``):
  a value that changed from ``1`` to ``true`` is a change. Containers are first compared
  with ``==`` (fast, in C) and only then confirmed by their serialised bytes.
* A blob reference (``{"$blob": ..., "size": ...}``) is replaced whole, never patched
  inside: a digest must never appear in a delta as a bare string, where the garbage
  collector's marking (which looks for references) would not see it. So is a user
  object's escape envelope (``{"$esc": ...}``, ``domain/userdata.py``): patched inside,
  a delta would carry the bare user object, which may look like a reference.
"""

from __future__ import annotations

import math
from typing import Any

from claude_state.errors import IntegrityError

#: At most this many front-drop offsets are tried when matching a shifted list.
_MAX_SHIFT_TRIES = 64
_BLOB_KEY = "$blob"
_ESC_KEY = "$esc"


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def _same(a: Any, b: Any) -> bool:
    """Strict JSON equality (``1``, ``1.0`` and ``true`` are three different values)."""
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is dict or ta is list:
        return bool(a == b) and _dumps(a) == _dumps(b)
    if ta is float:
        return bool(a == b) and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def _is_ref(v: Any) -> bool:
    return type(v) is dict and (_BLOB_KEY in v or _ESC_KEY in v)


def diff(old: Any, new: Any) -> dict[str, Any]:
    """The delta that turns *old* into *new* (``{}`` when they are the same).

    Neither argument is modified, and the delta shares no mutable object with them
    (values it carries are the caller's; serialise it before changing them).
    """
    d = _diff(old, new)
    return {} if d is None else d


def _diff(a: Any, b: Any) -> dict[str, Any] | None:
    if _same(a, b):
        return None
    ta = type(a)
    if ta is type(b):
        if ta is dict and not _is_ref(a) and not _is_ref(b):
            return _diff_dict(a, b)
        if ta is list:
            return _diff_list(a, b)
    return {"r": b}


def _diff_dict(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    changes: dict[str, Any] = {}
    for k, vb in b.items():
        if k in a:
            sub = _diff(a[k], vb)
            if sub is not None:
                changes[k] = sub
        else:
            changes[k] = {"r": vb}
    removed = [k for k in a if k not in b]
    if not changes and not removed:
        return None  # equal up to key order
    out: dict[str, Any] = {"d": changes}
    if removed:
        out["x"] = removed
    return out


def _shift(a: list[Any], b: list[Any]) -> int:
    """The smallest n > 0 with ``a[n:]`` a prefix of *b*, or 0 when there is none."""
    if not b:
        return 0
    first = b[0]
    tries = 0
    for n in range(1, len(a)):
        if len(a) - n > len(b):
            continue
        if not _same(a[n], first):
            continue
        if _same(a[n:], b[: len(a) - n]):
            return n
        tries += 1
        if tries >= _MAX_SHIFT_TRIES:
            break
    return 0


def _diff_list(a: list[Any], b: list[Any]) -> dict[str, Any]:
    if len(b) >= len(a) and _same(a, b[: len(a)]):
        return {"a": b[len(a) :]}  # pure append: the common case for logs
    drop = _shift(a, b)
    if drop:
        return {"t": drop, "a": b[len(a) - drop :]}
    n = min(len(a), len(b))
    items: dict[str, Any] = {}
    for i in range(n):
        sub = _diff(a[i], b[i])
        if sub is not None:
            items[str(i)] = sub
    if n and len(items) * 2 > n:
        return {"r": b}  # mostly different: a replacement is smaller and simpler
    out: dict[str, Any] = {}
    if len(a) > n:
        out["k"] = n
    if items:
        out["l"] = items
    if len(b) > n:
        out["a"] = b[n:]
    return out


def patch(old: Any, delta: Any) -> Any:
    """Apply *delta* (from :func:`diff`) to *old* and return the new value.

    *old* is not modified; the result shares unchanged parts with it, so neither should
    be mutated afterwards (checkpoint documents are read-only once built).

    :raises IntegrityError: when *delta* is malformed or does not fit *old* (a damaged
        or mismatched checkpoint chain).
    """
    if not isinstance(delta, dict):
        raise IntegrityError("malformed delta: expected an object")
    if not delta:
        return old
    if "r" in delta:
        return delta["r"]
    if "d" in delta or "x" in delta:
        return _patch_dict(old, delta)
    return _patch_list(old, delta)


def _patch_dict(old: Any, delta: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(old, dict):
        raise IntegrityError("delta does not fit: an object patch on a non-object")
    changes = delta.get("d", {})
    removed = delta.get("x", [])
    if not isinstance(changes, dict) or not isinstance(removed, list):
        raise IntegrityError("malformed delta: bad object patch")
    out = dict(old)
    for k in removed:
        if not isinstance(k, str) or k not in out:
            raise IntegrityError(f"delta does not fit: cannot remove key {k!r}")
        del out[k]
    for k, sub in changes.items():
        if k in out:
            out[k] = patch(out[k], sub)
        elif isinstance(sub, dict) and "r" in sub:
            out[k] = sub["r"]
        else:
            raise IntegrityError(f"delta does not fit: key {k!r} is missing")
    return out


def _patch_list(old: Any, delta: dict[str, Any]) -> list[Any]:
    if not isinstance(old, list):
        raise IntegrityError("delta does not fit: an array patch on a non-array")
    drop = delta.get("t", 0)
    items = delta.get("l", {})
    tail = delta.get("a", [])
    if (
        type(drop) is not int
        or not 0 <= drop <= len(old)
        or not isinstance(items, dict)
        or not isinstance(tail, list)
    ):
        raise IntegrityError("malformed delta: bad array patch")
    out = old[drop:]
    if "k" in delta:
        keep = delta["k"]
        if type(keep) is not int or not 0 <= keep <= len(out):
            raise IntegrityError("malformed delta: bad array length")
        del out[keep:]
    for key, sub in items.items():
        try:
            i = int(key)
        except ValueError:
            raise IntegrityError(f"malformed delta: bad array index {key!r}") from None
        if not 0 <= i < len(out):
            raise IntegrityError(f"delta does not fit: array index {i} out of range")
        out[i] = patch(out[i], sub)
    out.extend(tail)
    return out
