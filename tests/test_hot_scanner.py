"""The hot path's byte scanner gives what a JSON parser gives, or None; never another value.

``scan_fields`` finds the top-level ``hook_event_name`` and ``session_id`` of a hook
event without a JSON parser (``docs/hooks.md``, "The hot path"). The oracle here is
``json.loads``: for any JSON encoding of any event (random nesting, key order, duplicate
keys, whitespace anywhere JSON allows, escapes of any character, ``ensure_ascii`` on or
off) the scanner must return exactly the top-level string value, or None when the key is
absent, duplicated or not a string. For mutated, mostly invalid, documents it must return
None unless ``json.loads(..., strict=False)`` accepts them (the scanner does not look
inside the strings it does not return: ``docs/hooks.md``), and then the same values.

The control (``test_control_a_naive_scanner_is_caught``) runs the same oracle against
the scanner this one replaced, which answered for compact JSON only, and shows that the
generated documents expose it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import find as hypothesis_find

from claude_state.adapters.claude_code.hot import scan_field, scan_fields

NAMES = ("hook_event_name", "session_id")
REAL = Path(__file__).parent / "fixtures" / "claude-code-2.1.332" / "session.jsonl"
OLD = Path(__file__).parent / "fixtures" / "claude_code"


@dataclass
class Obj:
    """A JSON object as written: its members in order, duplicates allowed."""

    pairs: list[tuple[str, Any]]


# -- an encoder that takes every liberty JSON allows ---------------------------------------

WS = ["", "", "", " ", "  ", "\n", "\t", "\r\n", " \n\t "]
SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _u(code: int, r: random.Random) -> str:
    h = f"{code:04x}"
    return "\\u" + (h.upper() if r.random() < 0.5 else h)


def enc_str(s: str, r: random.Random, ascii_only: bool, p_esc: float) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append(r.choice(['\\"', _u(o, r)]))
        elif ch == "\\":
            out.append(r.choice(["\\\\", _u(o, r)]))
        elif ch == "/":
            out.append(r.choice(["/", "\\/"]))
        elif o < 0x20:
            out.append(SHORT[ch] if ch in SHORT and r.random() < 0.7 else _u(o, r))
        elif o >= 0x10000 and (ascii_only or r.random() < p_esc):
            v = o - 0x10000
            out.append(_u(0xD800 + (v >> 10), r) + _u(0xDC00 + (v & 0x3FF), r))
        elif (o >= 0x80 and ascii_only) or r.random() < p_esc:
            out.append(_u(o, r))
        else:
            out.append(ch)
    return "".join(out) + '"'


def encode(v: Any, r: random.Random, ascii_only: bool, p_esc: float) -> str:
    def ws() -> str:
        return r.choice(WS)

    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return enc_str(v, r, ascii_only, p_esc)
    if isinstance(v, list):
        items = [ws() + encode(x, r, ascii_only, p_esc) + ws() for x in v]
        return "[" + (",".join(items) if items else ws()) + "]"
    assert isinstance(v, Obj)
    members = [
        ws()
        + enc_str(k, r, ascii_only, p_esc)
        + ws()
        + ":"
        + ws()
        + encode(x, r, ascii_only, p_esc)
        for k, x in v.pairs
    ]
    return "{" + (",".join(m + ws() for m in members) if members else ws()) + "}"


# -- random events -------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
keys = (
    st.sampled_from(
        ["session_id", "hook_event_name", "tool_input", "effort", 'a"b', "c\\d", "é", "x y"]
    )
    | text
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.lists(st.tuples(keys, inner), max_size=4).map(Obj)
    ),
    max_leaves=25,
)
ids = st.sampled_from(
    ["7fd24885-14ec-415f-bb62-f5d63ed142c5", "s1", "a/b", 'q"uote', "\u00e9\U0001f600"]
)
names = st.sampled_from(["PreToolUse", "PostToolUse", "SessionStart", "Ünïcode"]) | text


@st.composite
def events(draw: st.DrawFn) -> tuple[bytes, Obj]:
    pairs: list[tuple[str, Any]] = draw(st.lists(st.tuples(keys, values), max_size=6))
    for name, value in (("session_id", ids | values), ("hook_event_name", names | values)):
        for _ in range(draw(st.sampled_from([1, 1, 1, 1, 0, 2]))):  # mostly once
            pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(value)))
    doc = Obj(pairs)
    r = random.Random(draw(st.integers(0, 2**32)))
    ascii_only = draw(st.booleans())
    p_esc = draw(st.sampled_from([0.0, 0.0, 0.05, 0.5]))
    raw = r.choice(WS) + encode(doc, r, ascii_only, p_esc) + r.choice(WS)
    return raw.encode("utf-8"), doc


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is Python's extension, not JSON")


def expected(raw: bytes) -> tuple[str | None, ...] | None:
    """What the scanner must answer, from ``json.loads``: the top-level string value of
    each name when it occurs once, else None; None for anything but a JSON object."""
    try:
        doc = json.loads(
            raw, strict=False, object_pairs_hook=lambda p: ("obj", p), parse_constant=_not_json
        )
    except (ValueError, RecursionError):
        return None
    if not (isinstance(doc, tuple) and doc[0] == "obj"):
        return None
    out: list[str | None] = []
    for name in NAMES:
        found = [v for k, v in doc[1] if k == name]
        out.append(found[0] if len(found) == 1 and isinstance(found[0], str) else None)
    return tuple(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_any_encoding_gives_what_json_gives(ev: tuple[bytes, Obj]) -> None:
    raw, _ = ev
    want = expected(raw)
    assert want is not None  # the encoder writes valid JSON
    assert scan_fields(raw, NAMES) == want


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(events())[0])
    for _ in range(draw(st.integers(1, 3))):
        # never within an escape (``\\uXXXX`` at most): escapes stay valid, as json needs
        ok = [i for i in range(len(raw) + 1) if raw.find(b"\\", max(0, i - 6), i) < 0]
        i = draw(st.sampled_from(ok))
        op = draw(st.sampled_from(["delete", "insert", "insert"]))
        if op == "delete" and i < len(raw) and raw[i] != 0x5C:
            del raw[i]
        elif op == "insert":
            raw[i:i] = draw(
                st.sampled_from(
                    [
                        b"{",
                        b"}",
                        b"[",
                        b"]",
                        b",",
                        b":",
                        b'"',
                        b"0",
                        b"1",
                        b"-",
                        b"e",
                        b".",
                        b"a",
                        b"n",
                        b" ",
                        b"\n",
                        b"\x00",
                        b"\xff",
                        b'"session_id":"x",',
                        b"[{",
                        b"}]",
                    ]
                )
            )
    return bytes(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_damaged_documents_give_none_or_what_a_parser_gives(raw: bytes) -> None:
    got = scan_fields(raw, NAMES)
    if got is not None:
        assert got == expected(raw), raw


# -- fixed cases: the real client, the shapes the issue names -------------------------------


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def test_every_event_of_the_real_session_and_its_reencodings() -> None:
    lines = _lines(REAL)
    assert len(lines) == 24
    for line in lines:
        doc = json.loads(line)
        want = (doc["hook_event_name"], doc["session_id"])
        assert scan_fields(line, NAMES) == want
        for variant in (
            json.dumps(doc),  # ": " and ", "
            json.dumps(doc, indent=2),
            json.dumps(dict(reversed(doc.items())), ensure_ascii=False),
            json.dumps({"wrapper": doc, **doc}),  # a nested copy before the real keys
            json.dumps({**doc, "tool_input": {"session_id": "nested", "x": [doc]}}),
        ):
            assert scan_fields(variant.encode(), NAMES) == want, variant


def test_the_older_hand_shaped_fixtures() -> None:
    for path in sorted(OLD.glob("*.json")):
        doc = json.loads(path.read_bytes())
        assert scan_fields(path.read_bytes(), NAMES) == (doc["hook_event_name"], doc["session_id"])


@pytest.mark.parametrize(
    "raw, want",
    [
        # nested values before the key, as Claude Code 2.1.332 writes them
        (
            b'{"effort":{"level":"medium"},"hook_event_name":"PreToolUse","session_id":"s"}',
            ("PreToolUse", "s"),
        ),
        # the key escaped; the value escaped
        (
            b'{"hook_event\\u005fname":"Pre\\u0054oolUse","session_id":"s\\/1"}',
            ("PreToolUse", "s/1"),
        ),
        # a nested copy first, the real key with a space after its colon
        (b'{"tool_input":{"session_id":"victim"},"session_id": "s"}', (None, "s")),
        # the key's text inside a string value is not a key
        (b'{"cmd":"echo \\"session_id\\":\\"victim\\"","session_id":"s"}', (None, "s")),
        # duplicated at the top level: json keeps the last, the scanner declines
        (b'{"session_id":"a","session_id":"b"}', (None, None)),
        # not a string
        (b'{"session_id":7,"hook_event_name":["PreToolUse"]}', (None, None)),
        # an escaped backslash before the closing quote
        (b'{"session_id":"a\\\\","hook_event_name":"X"}', ("X", "a\\")),
        # an escaped key among few, long strings (each short string is looked at)...
        (b'{"pad":"' + b"x\\n" * 3000 + b'","sess\\u0069on_id":"s"}', (None, "s")),
        # ...and among many short ones (one search of the input first)
        (b'{"a":[' + b'"x",' * 3000 + b'"y"],"sess\\u0069on_id":"s"}', (None, "s")),
    ],
)
def test_shapes(raw: bytes, want: tuple[str | None, ...]) -> None:
    assert expected(raw) == want
    assert scan_fields(raw, NAMES) == want


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"session_id":"s"',
        b'{"session_id":"s"}}',
        b'{"session_id":"s",}',
        b'{"session_id":"s" "x":1}',
        b'{"a":[1 2],"session_id":"s"}',
        b'{"a":{"b":1,2},"session_id":"s"}',
        b'{"a":01,"session_id":"s"}',
        b'{"a":tru,"session_id":"s"}',
        b'{"a":NaN,"session_id":"s"}',
        b'{1:2,"session_id":"s"}',
        b'{"a":[}],"session_id":"s"}',
        b'{"session_id":"s\\"}',
        b'{"session_id":"\xff"}',
        b'\x0b{"session_id":"s"}',
        b'{"session_id":"s"} {}',
    ],
)
def test_malformed_gives_none(raw: bytes) -> None:
    assert expected(raw) is None
    assert scan_fields(raw, NAMES) is None


def test_nesting_deeper_than_any_event_is_left_to_the_parser() -> None:
    """Each round of the grammar check takes one level off; past 64 levels the scanner
    declines (json and orjson still parse it: the cold path decides), so a hostile
    input cannot make it loop for long."""
    for depth, want in ((60, ("X", "s")), (70, None), (5000, None)):
        raw = b'{"session_id":"s","hook_event_name":"X","a":' + b"[" * depth + b"]" * depth + b"}"
        assert scan_fields(raw, NAMES) == want, depth


def test_the_field_helper() -> None:
    assert scan_field(b'{"tool_name": "Bash"}', "tool_name") == "Bash"
    assert scan_field(b'{"tool_name": "Bash"', "tool_name") is None


# -- control: the same oracle catches a scanner that is not this careful -------------------


def naive_scan(raw: bytes) -> tuple[str | None, ...] | None:
    """The scanner this one replaced: compact JSON only, first match wins (it declined
    when an object opened before the key; this copy drops that check)."""
    out: list[str | None] = []
    for name in NAMES:
        key = b'"' + name.encode() + b'":"'
        i = raw.find(key)
        if i < 0:
            out.append(None)
            continue
        end = raw.find(b'"', i + len(key))
        out.append(raw[i + len(key) : end].decode("utf-8", "replace"))
    return tuple(out)


def test_control_a_naive_scanner_is_caught() -> None:
    bad = hypothesis_find(
        events(),
        lambda ev: naive_scan(ev[0]) != expected(ev[0]),
        settings=settings(max_examples=2000, database=None, deadline=None),
    )
    assert naive_scan(bad[0]) != expected(bad[0])
    assert scan_fields(bad[0], NAMES) == expected(bad[0])
