"""Top-level fields of a hook event, read from its bytes without a JSON parser.

The hook's hot path (:mod:`claude_state.adapters.claude_code.hot`) needs two strings of
every event, ``hook_event_name`` and ``session_id``, and cannot afford ``json`` (it
imports ``re``) or ``orjson`` at start-up. :func:`scan_fields` answers for any valid JSON
encoding of the event (any key order, nested values before the keys, any whitespace,
escapes) with what ``json.loads`` gives for the top-level keys, or None when it cannot be
sure; the caller then parses the event for real (``docs/hooks.md``, "The hot path";
``tests/test_hot_scanner.py`` holds it to ``json.loads``). Standard library only, and
nothing imported at all.
"""

__all__ = ["JSON_WS", "scan_field", "scan_fields"]

#: JSON's whitespace
JSON_WS = b" \t\n\r"
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
    if skeleton.translate(None, _NOT_CONTROL).translate(None, JSON_WS):
        return False  # a control character outside strings (JSON allows only whitespace)
    tokens = set(skeleton.translate(_TOKENIZE).split()) - _LITERALS
    # integers without a leading zero are most numbers: only the others are parsed
    for tok in [t for t in tokens if not t.isdigit() or (t[0] == 0x30 and len(t) > 1)]:
        if not _is_number(tok):
            return False
    s = skeleton.translate(_TO_HASH)
    while s.find(b"##") >= 0:  # one '#' per number or literal
        s = s.replace(b"##", b"#")
    s = s.translate(None, JSON_WS)  # two values apart become '##' (or '$#'): stuck below
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
    body = raw.strip(JSON_WS)
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
        if after.lstrip(JSON_WS)[:1] != b":":
            continue  # a string value, not a key
        seg = b"".join(outside[counted : k + 1])
        depth += seg.count(b"{") + seg.count(b"[") - seg.count(b"}") - seg.count(b"]")
        counted = k + 1
        if depth == 1:  # a key of the top-level object, not a nested copy
            seen[ni] += 1
            # the value is a string when only ':' stands between the key and the next one
            value[ni] = k + 1 if after.strip(JSON_WS) == b":" else -1
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
