"""The secret detector shared by the hook's hot path and the redactor, without :mod:`re`.

Secrets are found by their *shape*, not by a list of vendor prefixes alone, because a
list always misses the next kind (issue #15). :func:`scan` looks for:

* **private key blocks**: any ``-----BEGIN ... PRIVATE KEY...-----`` armor (PEM, PKCS#8,
  OpenSSH, PGP ``PRIVATE KEY BLOCK``), to its ``-----END`` line;
* **assignments to a key that names a secret**: ``DB_PASS=``, ``"apiKey": "..."``,
  ``password: ...`` (YAML/INI), ``--token VALUE``, ``--password=VALUE``,
  ``aws configure set aws_secret_access_key VALUE``, query strings (``&sig=``). The key
  is split into words (``_``, ``-``, ``.``, camelCase) and its last word decides
  (:func:`sensitive_key`); the value is kept only when it is a placeholder (``$VAR``,
  ``<password>``, ``***``) or, unquoted, clearly code (``password=args.password``,
  ``token = next(it)``): :func:`secret_value`;
* **URL credentials** of any scheme, empty user included (``redis://:pw@host``);
* **command-line shapes** of tools that take a password without a key word:
  ``curl -u user:pw``, ``mysql -pPW``, ``sshpass -p``, ``docker login -p``,
  ``redis-cli -a``, ``ldapsearch -w``, ``smbclient -U user%pw``, ``htpasswd -b``;
* **token-shaped strings**: a run of base64/base64url characters of at least 20, with
  upper case, lower case and a digit, whose Shannon entropy is that of random data
  (hex digests, uuids, identifiers and paths stay: they fail the charset or entropy
  test), plus known vendor prefixes (``ghp_``, ``xoxb-``, ``AKIA``...) whose tails are
  hex or too short to judge by entropy; ``Bearer <token>``.

The same function serves both sides, which is what keeps them in agreement:

* the redactor (:mod:`claude_state.plugins.redaction`, cold path) decodes each JSON
  string value and scans it wrapped in ``"`` characters;
* the hot path's prefilter :func:`may_contain_secret` un-escapes the whole raw event
  (:func:`json_unescape`) and scans it once. Every rule looks at most one character
  past a string's edge, treats ``"`` as an edge, or only asks "is there an X before this
  on the line" (which more context can only make true), so whatever the redactor finds
  inside one string the prefilter finds in the whole event (a corpus test holds them to
  that). ``re`` (about 10 ms to import) is only loaded when the prefilter fires.

Hot path module: no imports at module level (``math.log2`` is imported on the first
token-shaped candidate).
"""

__all__ = [
    "json_unescape",
    "key_value_secret",
    "may_contain_secret",
    "scan",
    "secret_value",
    "sensitive_key",
]

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    Span = tuple[int, int, str]

# -- character classes (as byte values) -----------------------------------------------

_UPPER_B = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER_B = b"abcdefghijklmnopqrstuvwxyz"
_DIGIT_B = b"0123456789"
_ALNUM = frozenset(_UPPER_B + _LOWER_B + _DIGIT_B)
_UPPER = frozenset(_UPPER_B)
_LOWER = frozenset(_LOWER_B)
_DIGIT = frozenset(_DIGIT_B)
_ALL = bytes(range(256))


def _table(*classes: tuple[bytes, int], rest: int = 0x20) -> bytes:
    """A ``bytes.translate`` table mapping each class's characters to its byte (-1: to
    themselves) and every other character to *rest*. Built with ``bytes.maketrans``,
    in C: generator-built tables cost ~0.3 ms of this module's import, on the hot path."""
    src = b"".join(chars for chars, _ in classes)
    dst = b"".join(chars if to < 0 else bytes((to,)) * len(chars) for chars, to in classes)
    others = _ALL.translate(None, src)
    return bytes.maketrans(src + others, dst + bytes((rest,)) * len(others))


#: characters of a key name (``spring.datasource.password``, ``x-api-key``, ``--token``)
_KEYCH = _ALNUM | frozenset(b"_.-")
#: characters that end an unquoted value
_VALUE_END = frozenset(b" \t\r\n\"'`,;()[]{}<>|&")
_SPACE = frozenset(b" \t")
#: ``bytes.translate`` table: everything but letters and digits to a space
_SEP_TABLE = _table((_UPPER_B + _LOWER_B + _DIGIT_B, -1))
#: ``bytes.translate`` table: key-name characters to ``k``, the rest to a space
_KEY_TABLE = _table((bytes(sorted(_KEYCH)), 0x6B))

#: ``bytes.translate`` table: token characters (base64, base64url, ``.``) to ``a``, the
#: rest to a space, so long runs are found with one ``find(b"a" * 20)``.
_RUN_CHARS = _ALNUM | frozenset(b"+/_.-")
_RUN_TABLE = _table((bytes(sorted(_RUN_CHARS)), 0x61))
_MIN_TOKEN = 20
_RUN_PROBE = b"a" * _MIN_TOKEN
#: the same without ``.``: the prefilter's probe
_PROBE_TABLE = _table((bytes(sorted(_RUN_CHARS - {0x2E})), 0x61))

# -- key names ------------------------------------------------------------------------

#: last words of a key name that make its value a secret, and the marker kind
_SECRET_WORDS: dict[bytes, str] = {
    b"password": "password",
    b"passwd": "password",
    b"pwd": "password",
    b"pw": "password",
    b"pass": "password",
    b"passphrase": "password",
    b"passcode": "password",
    b"secret": "secret",
    b"secrets": "secret",
    b"token": "token",
    b"apikey": "api_key",
    b"accesskey": "access_key",
    b"secretkey": "secret",
    b"privatekey": "private_key",
    b"credential": "credential",
    b"credentials": "credential",
    b"authorization": "authorization",
    b"auth": "authorization",
    b"authtoken": "token",
}
#: single words ending like this are secrets too (``PGPASSWORD``, ``clientsecret``)
_SECRET_ENDINGS: tuple[tuple[bytes, str], ...] = (
    (b"password", "password"),
    (b"passwd", "password"),
    (b"passphrase", "password"),
    (b"secret", "secret"),
    (b"token", "token"),
    (b"apikey", "api_key"),
)
#: ``<qualifier> key`` names a secret (``api_key``, ``AccountKey``, ``SIGNING_KEY``); a
#: bare ``key`` does not (``dict key``, ``sort_key``)
_KEY_QUALIFIERS = frozenset(
    (
        b"api",
        b"access",
        b"secret",
        b"private",
        b"account",
        b"signing",
        b"master",
        b"encryption",
        b"encrypt",
        b"client",
        b"app",
        b"consumer",
        b"subscription",
        b"auth",
        b"admin",
        b"webhook",
        b"license",
        b"service",
        b"storage",
        b"hmac",
        b"jwt",
        b"deploy",
    )
)
#: environment variables named like a secret that are not (the working directory)
_NOT_SECRET_KEYS = frozenset((b"PWD", b"OLDPWD"))

#: where a key name may start: the anchors every name of :func:`sensitive_key` contains
_ANCHORS = (b"pass", b"pw", b"secret", b"token", b"key", b"auth", b"credential", b"sig=")

#: words that, before the key, mean ``KEY VALUE`` with a space is an assignment
_SET_CONTEXTS = (b" set ", b" config ", b"machine ")

#: ``Authorization:`` schemes followed by the credential itself
_AUTH_SCHEMES = frozenset(
    (b"bearer", b"basic", b"token", b"digest", b"bot", b"negotiate", b"ssws", b"apikey")
)

#: value types of annotations (``token: str``), kept under ``key: value``
_TYPE_NAMES = frozenset(
    (
        b"str",
        b"bytes",
        b"int",
        b"float",
        b"bool",
        b"object",
        b"any",
        b"none",
        b"list",
        b"dict",
        b"tuple",
        b"set",
        b"string",
        b"number",
        b"boolean",
        b"bytearray",
        b"optional",
        b"callable",
        b"unknown",
        b"char",
        b"void",
    )
)
_PLACEHOLDER_WORDS = frozenset(
    (b"null", b"none", b"nil", b"undefined", b"true", b"false", b"...", b"redacted")
)


def _words(name: bytes) -> list[bytes]:
    """*name* split at ``_ - . space`` and camelCase humps, lower-cased."""
    parts = name.translate(_SEP_TABLE).split()
    if not any(c in _UPPER for c in name):
        return parts
    words: list[bytes] = []
    for part in parts:
        if part.islower() or part.isupper() or part.isdigit():
            words.append(part.lower())
            continue
        start = 0
        for k in range(1, len(part)):
            if part[k] in _UPPER and part[k - 1] in _LOWER:
                words.append(part[start:k].lower())
                start = k
        words.append(part[start:].lower())
    return words


def sensitive_key(name: bytes, flag: bool = False) -> str | None:
    """The marker kind when a value under key *name* is a secret, else None.

    The last word of the name decides (``DB_PASS``, ``accessToken``, ``client_secret``,
    ``aws_secret_access_key``, ``PGPASSWORD``), so ``max_tokens``, ``token_type``,
    ``bypass`` and ``primary_key`` are not secrets. *flag*: the name is a command-line
    option (``-storepass``), where a word ending in ``pass`` counts too.
    """
    name = name.strip(b"-")
    if name in _NOT_SECRET_KEYS:
        return None
    words = _words(name)
    if not words:
        return None
    last = words[-1]
    kind = _SECRET_WORDS.get(last)
    if kind is not None:
        return kind
    if last == b"key":
        if len(words) > 1 and words[-2] in _KEY_QUALIFIERS:
            return "api_key" if words[-2] == b"api" else words[-2].decode() + "_key"
        return None
    if last == b"base" and words[-3:-1] == [b"secret", b"key"]:
        return "secret"  # Rails secret_key_base
    for ending, kind in _SECRET_ENDINGS:
        if last.endswith(ending):
            return kind
    if flag and last.endswith(b"pass") and last not in (b"bypass", b"compass"):
        return "password"
    return None


def _is_placeholder(v: bytes) -> bool:
    """A value that stands for a secret but is not one: ``$DB_PASSWORD``, ``${X}``,
    ``$(cmd)``, ``<your-token>``, ``{{ vault_pw }}``, ``%s``, ``***``, ``xxxx``, null."""
    if not v:
        return True
    c = v[0]
    if c == 0x24:  # $
        rest = v[1:]
        if rest[:1] in (b"{", b"("):
            return True
        return (
            bool(rest)
            and rest[0] not in _DIGIT
            and all(ch in _UPPER or ch in _DIGIT or ch == 0x5F for ch in rest)
        )
    if c == 0x3C and v[-1] == 0x3E:  # <...>
        return True
    if c == 0x7B and v[-1] == 0x7D:  # {...}: templates, f-strings
        return True
    if v.startswith((b"%(", b"%s", b"[REDACTED")) or b"***" in v:
        return True
    if v.strip().lower() in _AUTH_SCHEMES:  # ``"Basic " + b64encode(...)``
        return True
    if len(v) >= 3 and (v.strip(b"*") == b"" or v.strip(b"xX") == b"" or v.strip(b".") == b""):
        return True
    return v.lower() in _PLACEHOLDER_WORDS


def _metavar(v: bytes) -> bool:
    """An upper-case word standing for a value in usage text (``--password PASSWORD``,
    ``-p PW``, ``scheme://USER:PASS@host``), not a password."""
    return len(v) <= 16 and v.replace(b"_", b"").isalpha() and v.isupper()


def _is_identifier(v: bytes) -> bool:
    if not v or v[0] in _DIGIT:
        return False
    return all(c in _ALNUM or c == 0x5F for c in v)


def secret_value(
    value: bytes,
    quoted: bool,
    op: bytes = b"=",
    spaced: bool = False,
    before: int = 0x20,
    after: int = 0x20,
    flag: bool = False,
    key: bytes = b"",
    key_quoted: bool = False,
) -> bool:
    """Whether *value*, assigned to a key that names a secret, is a secret to hide.

    Quoted literals and numbers of four digits or more always are (unless a
    placeholder). An unquoted identifier is code, not a secret, when it reads as code:
    a dotted name or a call (``args.password``, ``getpass()``), the key's own name
    (``password=password``), a type (``token: str``), a keyword argument or an
    assignment with spaces around ``=`` (``f(password=pw)``, ``token = tok``), a key in
    quotes (``{"token": token}``). It is a secret in shell, env, INI and query shapes
    (``DB_PASS=abc``, ``--password abc``, ``&pwd=abc``, ``pass:abc``) and whenever it
    holds a digit.

    :param op: the assignment operator (``=``, ``:``, ``:=``, ``=>``, or ``" "`` for
        ``--flag VALUE`` and ``set KEY VALUE``).
    :param spaced: a space or tab around the operator.
    :param before: the byte before the key; *after*: the byte after the value.
    """
    if _is_placeholder(value):
        return False
    if quoted and (
        value.lower() == key.lower().rsplit(b".", 1)[-1].strip(b"-") or value in _SECRET_WORDS
    ):
        return False  # ``{"pass": "pass"}``, ``{"pwd": "password"}``: names, not passwords
    if not quoted and _metavar(value):
        return False
    if quoted or flag or op == b" ":
        return True
    c = value[0]
    if c in _DIGIT or (c == 0x2D and value[1:2].isdigit()):
        digits = value.lstrip(b"-")
        return not (digits.isdigit() and len(digits) < 4)
    has_digit = any(ch in _DIGIT for ch in value)
    if not _is_identifier(value):
        # a dotted chain (``args.password``) is code, unless digits in an env or
        # query shape make it a password (``PGPASSWORD=Ai6.r7tx``); other symbols: secret
        if not all(_is_identifier(p) for p in value.split(b".")):
            return True
        return has_digit and not spaced and before not in (0x28, 0x2C) and after != 0x28
    if after in (0x28, 0x5B, 0x2E):  # ( [ .: a call, subscript or attribute
        return False
    low = value.lower()
    if low == key.lower() or low in _TYPE_NAMES or low == key.lower().rsplit(b".", 1)[-1]:
        return False
    if key_quoted:
        return False  # ``{"password": password}``: JSON quotes its strings, code does not
    if op == b":":
        if spaced:  # YAML ``password: hunter``; an annotation ``token: Token`` is kept
            if after == 0x20 and not has_digit:
                return False  # prose: ``First pass: determine the ...``
            return has_digit or value[0] not in _UPPER
        return True  # ``pass:abc`` (openssl), ``user:pw``
    if has_digit:
        return True
    return not spaced and before not in (0x28, 0x2C)  # ( ,: a keyword argument


# -- the detectors ----------------------------------------------------------------------


def _line_start(s: bytes, i: int) -> int:
    j = s.rfind(b"\n", 0, i)
    return j + 1


def _value_at(s: bytes, p: int) -> tuple[int, int, bool]:
    """``(start, end, quoted)`` of the value starting at *p*."""
    n = len(s)
    if p >= n:
        return p, p, False
    q = s[p]
    if q in (0x22, 0x27):  # " ' (a backtick is a command or a Markdown code span)
        nl = s.find(b"\n", p + 1)
        lim = n if nl < 0 else nl
        e = s.find(bytes((q,)), p + 1, lim)
        if q != 0x22:
            dq = s.find(b'"', p + 1, lim)
            if dq >= 0 and (e < 0 or dq < e):
                e = dq
        if e < 0:
            e = lim
        return p + 1, e, True
    e = p
    while e < n and s[e] not in _VALUE_END:
        e += 1
    return p, e, False


def _assignments(s: bytes, low: bytes, out: "list[Span]", first: bool) -> None:
    seen: set[int] = set()
    n = len(s)
    for anchor in _ANCHORS:
        i = low.find(anchor)
        while i >= 0:
            a = i
            while a > 0 and s[a - 1] in _KEYCH:
                a -= 1
            e = i + len(anchor)
            if anchor == b"sig=":
                e -= 1
            while e < n and s[e] in _KEYCH:
                e += 1
            i = low.find(anchor, e)
            if a in seen:
                continue
            seen.add(a)
            span = _assignment(s, a, e)
            if span is not None:
                out.append(span)
                if first:
                    return


def _assignment(s: bytes, a: int, e: int) -> "Span | None":
    """The secret value span of the key ``s[a:e]`` when it is assigned one."""
    n = len(s)
    ident = s[a:e]
    before = s[a - 1] if a > 0 else 0x22
    flag = ident[:1] == b"-"
    if ident == b"sig":
        kind = "signature" if before in (0x3F, 0x26) else None  # ?sig= &sig=
    else:
        kind = sensitive_key(ident, flag)
    if kind is None:
        return None
    p = e
    key_quoted = subscript = False
    for _ in range(2):  # "password": ... / ['password'] = ...
        if p < n and s[p] in (0x22, 0x27, 0x5D):
            key_quoted = key_quoted or s[p] != 0x5D
            subscript = subscript or s[p] == 0x5D
            p += 1
    q = p
    while p < n and s[p] in _SPACE:
        p += 1
    spaced = p > q
    two = s[p : p + 2]
    if two in (b":=", b"=>"):
        op, p = two, p + 2
    elif two[:1] == b"=" and two != b"==":
        op, p = b"=", p + 1
    elif two[:1] == b":" and two != b"::" and not subscript:  # not ``d['pass']: ...``
        op, p = b":", p + 1
    elif spaced and not key_quoted and (flag or _set_context(s, a)):
        op = b" "
    else:
        return None
    if op != b" ":
        q = p
        while p < n and s[p] in _SPACE:
            p += 1
        spaced = spaced or p > q
    vs, ve, quoted = _value_at(s, p)
    if quoted and (ve >= n or s[ve] != s[vs - 1]):
        return None  # no closing quote on the line: the quote closed something else
    value = s[vs:ve]
    if (
        not quoted
        and value.lower() in _AUTH_SCHEMES
        and ve < n
        and s[ve] == 0x20
        and kind == "authorization"
    ):
        p = ve
        while p < n and s[p] == 0x20:
            p += 1
        vs, ve, quoted = _value_at(s, p)
        value = s[vs:ve]
    after = s[ve] if ve < n else 0x22
    if quoted and ve < n and s[ve] in (0x22, 0x27):  # past the closing quote
        after = s[ve + 1] if ve + 1 < n else 0x22
    if not value:
        return None
    if secret_value(value, quoted, op, spaced, before, after, flag, ident, key_quoted):
        return vs, ve, kind
    if quoted and after not in _QUOTE_FOLLOW:
        # ``"$X"rest``: the quote closes nothing, so the placeholder may be a prefix of
        # a longer value (a JSON string holding a quote); count it as a secret
        return vs, ve, kind
    return None


#: what may follow a closing quote (JSON or code syntax); anything else means the
#: quote was part of the value
_QUOTE_FOLLOW = frozenset(b" \t\r\n,;:)]}\"'>/`")


def key_value_secret(key: bytes, value: bytes, quoted: bool) -> str | None:
    """The marker kind when the JSON member ``"key": value`` holds a secret, else None.

    Decided by the same rule that reads ``"key":value`` in the prefilter's view of the
    event (the key's last run of name characters, then :func:`secret_value`), so the
    two cannot disagree. *value*: the decoded string, or a literal's bytes.
    """
    e = len(key) + 1
    t = b'"' + key + b'":' + (b'"' + value + b'"' if quoted else value) + b'"'
    a = e
    while a > 1 and t[a - 1] in _KEYCH:
        a -= 1
    if a == e:
        return None
    low = t[a:e].lower()
    if not any(x in low for x in _ANCHORS):
        return None
    span = _assignment(t, a, e)
    return None if span is None else span[2]


def _set_context(s: bytes, a: int) -> bool:
    """``aws configure set KEY VALUE``, ``git config --global x.token VALUE``,
    ``npm config set //host/:_authToken VALUE``, netrc ``machine h login u password p``:
    the key follows the context word, with only options (or its own prefix) between."""
    line = s[_line_start(s, a) : a]
    for c in _SET_CONTEXTS:
        k = line.rfind(c)
        if k < 0:
            continue
        between = line[k + len(c) :].split()
        if c == b"machine ":
            return len(between) <= 4
        if s[a - 1 : a] not in (b" ", b"\t") and between:
            between = between[:-1]  # the key's own prefix (``//host/:``)
        if all(x[:1] == b"-" for x in between):
            return True
    return False


#: what an armor label is made of (``RSA PRIVATE KEY``, ``PGP PRIVATE KEY BLOCK``)
_ARMOR_LABEL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def _private_keys(s: bytes, low: bytes, out: "list[Span]", public: list[tuple[int, int]]) -> None:
    i = low.find(b"-----begin ")
    while i >= 0:
        h = low.find(b"-----", i + 11, i + 120)
        if h >= 0 and (s.find(b'"', i, h) >= 0 or s.find(b"\n", i, h) >= 0):
            h = -1  # the header line ends first: not an armor header
        if h < 0:
            i = low.find(b"-----begin ", i + 11)
            continue
        label = low[i + 11 : h]
        end = low.find(b"-----end", h + 5)
        quote = s.find(b'"', h + 5)
        stop = len(s)
        if end >= 0:
            close = low.find(b"-----", end + 8)
            stop = close + 5 if close >= 0 else end
        if 0 <= quote < stop:
            stop = quote
        if b"private key" in label and not s[i + 11 : h].strip(_ARMOR_LABEL):
            out.append((i, stop, "private_key"))
        else:
            public.append((i, stop))
        i = low.find(b"-----begin ", max(stop, i + 11))


#: where a URL's authority ends (besides control characters and space)
_URL_END = frozenset(b"/\"'<>`\\")


#: passwords of documentation examples (``scheme://user:password@host``)
_URL_EXAMPLES = frozenset((b"password", b"passwd", b"pass", b"pwd", b"pw", b"secret", b"token"))


def _urls(s: bytes, out: "list[Span]") -> None:
    i = s.find(b"://")
    n = len(s)
    while i >= 0:
        j = i + 3
        i = s.find(b"://", j)
        if j - 4 < 0 or s[j - 4] not in _ALNUM:
            continue
        e = j
        lim = min(n, j + 2048)
        while e < lim and s[e] > 0x20 and s[e] not in _URL_END:
            e += 1
        at = s.rfind(b"@", j, e)
        if at < 0:
            continue
        colon = s.find(b":", j, at)
        if colon < 0:
            continue
        pw = s[colon + 1 : at]
        if pw and not _is_placeholder(pw) and pw.lower() not in _URL_EXAMPLES and not _metavar(pw):
            out.append((colon + 1, at, "url_password"))


#: (tool, flag, how the value follows): ``1`` attached only (``mysql -pPW``: ``-p PW``
#: prompts), ``2`` attached or as the next argument, ``3`` the next argument
_TOOL_FLAGS: tuple[tuple[bytes, bytes, int], ...] = (
    (b"mysql", b" -p", 1),
    (b"mariadb", b" -p", 1),
    (b"sshpass", b" -p", 2),
    (b"login", b" -p", 3),
    (b"redis-cli", b" -a", 3),
    (b"ldap", b" -w", 3),
    (b"sqlcmd", b" -P", 3),
    (b"cqlsh", b" -p", 3),
)


def _tools(s: bytes, low: bytes, out: "list[Span]") -> None:
    n = len(s)
    for tool, flag, mode in _TOOL_FLAGS:
        t = low.find(tool)
        while t >= 0:
            nl = s.find(b"\n", t)
            eol = n if nl < 0 else nl
            f = s.find(flag, t + len(tool), eol)
            while f >= 0:
                p = f + len(flag)
                nxt = s[p] if p < n else 0
                if nxt in _SPACE and mode > 1:
                    while p < eol and s[p] in _SPACE:
                        p += 1
                elif mode == 3 or nxt in _SPACE or (nxt in _VALUE_END and nxt not in b"\"'`"):
                    f = s.find(flag, p, eol)
                    continue
                vs, ve, quoted = _value_at(s, p)
                v = s[vs:ve]
                if quoted and (ve >= n or s[ve] != s[vs - 1]):
                    v = b""  # an unclosed quote closes something else (``"-p " + pw``)
                if v.strip(b" ,;+") and not _is_placeholder(v) and not _metavar(v):
                    out.append((vs, ve, "cli_password"))
                f = s.find(flag, max(ve, p), eol)
            t = low.find(tool, t + len(tool))
    # curl/wget/httpie ``-u user:pw`` / ``--user user:pw``; smbclient ``-U user%pw``
    for flag, sep in ((b" -u", 0x3A), (b" --user", 0x3A), (b" -U", 0x25)):
        f = s.find(flag)
        while f >= 0:
            p = f + len(flag)
            f = s.find(flag, p)
            if p >= n or s[p] not in b" \t=":
                continue
            p += 1
            while p < n and s[p] in _SPACE:
                p += 1
            vs, ve, quoted = _value_at(s, p)
            c = s.find(bytes((sep,)), vs, ve)
            if c < 0 or s[c : c + 3] == b"://":
                continue
            pw = s[c + 1 : ve]
            if pw and not _is_placeholder(pw) and not _metavar(pw):
                out.append((c + 1, ve, "cli_password"))
    # htpasswd -b[c] FILE USER PASSWORD
    t = low.find(b"htpasswd ")
    while t >= 0:
        nl = s.find(b"\n", t)
        args = s[t : n if nl < 0 else nl].split(b" ")
        pos = [x for x in args[1:] if x and x[:1] != b"-"]
        if any(x[:1] == b"-" and b"b" in x for x in args[1:]) and len(pos) >= 3:
            k = s.find(b" " + pos[2], t) + 1
            if k > 0:
                out.append((k, k + len(pos[2]), "cli_password"))
        t = low.find(b"htpasswd ", t + 9)


def _bearer(s: bytes, low: bytes, out: "list[Span]") -> None:
    n = len(s)
    i = low.find(b"bearer")
    while i >= 0:
        p = i + 6
        i = low.find(b"bearer", p)
        if (p - 7 >= 0 and s[p - 7] in _ALNUM) or p >= n or s[p] not in _SPACE:
            continue
        while p < n and s[p] in _SPACE:
            p += 1
        e = p
        while e < n and (s[e] in _ALNUM or s[e] in b"._~+/=-"):
            e += 1
        if e - p >= 8 and not _is_placeholder(s[p:e]):
            out.append((p, e, "bearer_token"))


#: vendor prefixes whose tails the entropy test cannot judge (hex, upper case only,
#: short): ``(prefix as written, minimum tail length, kind)``; matched case-sensitively
#: at the start of a token run.
_PREFIXES: tuple[tuple[bytes, int, str], ...] = (
    (b"AKIA", 16, "aws_access_key_id"),
    (b"ASIA", 16, "aws_access_key_id"),
    (b"ghp_", 20, "github_token"),
    (b"gho_", 20, "github_token"),
    (b"ghu_", 20, "github_token"),
    (b"ghs_", 20, "github_token"),
    (b"ghr_", 20, "github_token"),
    (b"github_pat_", 20, "github_token"),
    (b"glpat-", 16, "gitlab_token"),
    (b"npm_", 20, "npm_token"),
    (b"pypi-", 20, "pypi_token"),
    (b"sk-", 20, "api_key"),
    (b"sk_live_", 12, "stripe_key"),
    (b"sk_test_", 12, "stripe_key"),
    (b"rk_live_", 12, "stripe_key"),
    (b"whsec_", 14, "stripe_key"),
    (b"xox", 17, "slack_token"),
    (b"xapp-", 15, "slack_token"),
    (b"SG.", 20, "sendgrid_key"),
    (b"key-", 32, "mailgun_key"),
    (b"AGE-SECRET-KEY-1", 40, "age_secret_key"),
    (b"AIza", 30, "google_api_key"),
    (b"ya29.", 20, "google_oauth_token"),
    (b"hf_", 20, "huggingface_token"),
    (b"dop_v1_", 20, "digitalocean_token"),
    (b"shpat_", 20, "shopify_token"),
    (b"SK", 32, "twilio_key"),
)
_PREFIX_STARTS = tuple(p for p, _, _ in _PREFIXES)
#: prefixes whose tail is hex: ``SKIP_THIS_TEST_...`` is no Twilio key
_HEX_TAILS = frozenset((b"key-", b"SK"))
_HEX_DIGITS = b"0123456789abcdefABCDEF"

#: ids that look random but are not secrets (Claude tool-use and message ids)
_ID_PREFIXES = (
    b"toolu_",
    b"srvtoolu_",
    b"msg_",
    b"req_",
    b"call_",
    b"chatcmpl-",
)
#: digests in base64: Subresource Integrity (package-lock.json, yarn.lock, HTML)
_DIGEST_PREFIXES = (b"sha1-", b"sha256-", b"sha384-", b"sha512-")
#: base64 of an SSH public key's type field (``AAAAB3NzaC1yc2E`` is ``ssh-rsa``)
_SSH_PUBLIC = (b"AAAAB3NzaC1", b"AAAAC3NzaC1", b"AAAAE2VjZHNh")

_log2 = None


def _entropy(x: bytes) -> float:
    global _log2
    if _log2 is None:
        from math import log2

        _log2 = log2
    n = len(x)
    h = 0.0
    for c in set(x):
        p = x.count(c) / n
        h -= p * _log2(p)
    return h


#: ``bytes.translate`` table: upper case to ``U``, lower case to ``l``, digits to ``d``
_CLASS_TABLE = _table((_UPPER_B, 0x55), (_LOWER_B, 0x6C), (_DIGIT_B, 0x64), rest=0x6F)
#: per class letter of ``_CLASS_TABLE``, a table keeping it and blanking the rest (runs
#: of a class counted with ``split``, in C)
_CLASS_KEEP = tuple(_table((bytes((k,)), -1)) for k in b"Uldo")
#: ``bytes.translate`` table: lower case letters kept, the rest to a space
_LOWER_TABLE = _table((_LOWER_B, -1))
#: the entropy (bits per character) that all but 1 in 1,000 random base62 strings of a
#: length reach, by length (measured); between two lengths the smaller one's applies
_ENTROPY_FLOOR = (
    (100, 5.1),
    (80, 4.95),
    (64, 4.75),
    (48, 4.45),
    (40, 4.3),
    (36, 4.2),
    (32, 4.05),
    (28, 3.85),
    (24, 3.75),
    (22, 3.6),
    (20, 3.45),
)


def _random_looking(x: bytes) -> bool:
    """*x* (no ``.``) looks like random key material.

    It is long (20+), has upper and lower case, is not an alphabet written out, and
    looks random: few of its characters sit in lower-case runs (camelCase and snake_case
    names are made of words), letters alone must change case often, and its Shannon
    entropy reaches what 999 in 1,000 random strings of its length reach. Hex digests
    and uuids have no upper case, so they never count.
    """
    n = len(x)
    if n < _MIN_TOKEN or x.lower() == x or x.upper() == x:
        return False
    if x.startswith(_SSH_PUBLIC):
        return False
    if n > 128:  # judge a long run by its start: random data is random throughout
        x, n = x[:128], 128
    # words: the share of characters in lower-case runs of 3+ (``PyUnicode_AsWideChar``
    # 0.6); random strings stay under these but about 1 in 200
    words = sum(len(r) for r in x.translate(_LOWER_TABLE).split() if len(r) >= 3)
    if words >= n * (0.6 if n < 24 else 0.5 if n < 40 else 0.45):
        return False
    c = x.translate(_CLASS_TABLE)
    runs = sum(len(c.translate(t).split()) for t in _CLASS_KEEP)
    if b"d" not in c and (runs - 1) < 0.45 * (n - 1):
        return False  # letters only and few humps: a name
    h = _entropy(x)
    for length, floor in _ENTROPY_FLOOR:
        if n >= length:
            if h < floor:
                return False
            break
    # an alphabet written out (``ABC...xyz0123``) is as varied as random data
    steps = sum(1 for k in range(1, n) if x[k] == x[k - 1] + 1)
    return steps * 3 <= n


def _tokens(s: bytes, out: "list[Span]", public: list[tuple[int, int]]) -> None:
    t = s.translate(_RUN_TABLE)
    n = len(s)
    i = t.find(_RUN_PROBE)
    while i >= 0:
        e = t.find(b" ", i)
        if e < 0:
            e = n
        nxt = t.find(_RUN_PROBE, e)
        if not any(a <= i < b for a, b in public):
            _token_run(s, i, e, out)
        i = nxt


def _token_run(s: bytes, i: int, e: int, out: "list[Span]") -> None:
    run = s[i:e]
    if run.startswith(_DIGEST_PREFIXES) or s[i - 3 : i] == b"h1:":
        return  # a digest in base64 (Subresource Integrity; ``h1:`` of go.sum)
    # pieces: the run split at "/" when it is a path (a lower-case word between
    # slashes), else the whole run (base64 has "/" too); each piece then at "."
    pieces: list[tuple[int, bytes]] = []
    if b"/" in run:
        segs = run.split(b"/")
        if run[:1] == b"/" or any(
            len(x) >= 3 and x.isalpha() and (x.islower() or x[1:].islower()) for x in segs
        ):
            off = i
            for x in segs:
                pieces.append((off, x))
                off += len(x) + 1
        else:
            pieces.append((i, run))
    else:
        pieces.append((i, run))
    for off, piece in pieces:
        off += len(piece) - len(piece.lstrip(b"./"))
        piece = piece.strip(b"./")
        if len(piece) < 10 or piece.startswith(_ID_PREFIXES):
            continue
        kind = None
        if piece.startswith(_PREFIX_STARTS):
            for prefix, tail, k in _PREFIXES:
                if piece.startswith(prefix) and len(piece) - len(prefix) >= tail:
                    if prefix in _HEX_TAILS and piece[len(prefix) :].strip(_HEX_DIGITS):
                        continue
                    head = piece[len(prefix) :] if prefix[-1:] == b"." else piece
                    if len(head.split(b".", 1)[0]) < _MIN_TOKEN:
                        continue  # the prefilter looks for 20 characters without a dot
                    kind = k
                    break
        if kind is None:
            if len(piece) < _MIN_TOKEN or piece.islower() or piece.isupper():
                continue  # too short, or one case only: no part can look random
            subs = piece.split(b".")
            if any(_random_looking(x) for x in subs if len(x) >= _MIN_TOKEN):
                kind = "jwt" if piece.startswith(b"eyJ") and len(subs) == 3 else "token"
        if kind is not None:
            out.append((off, off + len(piece), kind))


def scan(s: bytes, first: bool = False) -> "list[Span]":
    """The secrets in *s*: ``(start, end, kind)`` byte spans, unsorted, may overlap.

    *first*: stop at the first one found (the prefilter's question).
    """
    low = s.lower()
    out: list[Span] = []
    public: list[tuple[int, int]] = []
    _private_keys(s, low, out, public)
    if first and out:
        return out
    _urls(s, out)
    if first and out:
        return out
    _assignments(s, low, out, first)
    if first and out:
        return out
    _tools(s, low, out)
    if first and out:
        return out
    _bearer(s, low, out)
    if first and out:
        return out
    _tokens(s, out, public)
    return out


# -- the prefilter ----------------------------------------------------------------------

_SIMPLE_ESCAPES = (
    (b'\\"', b'"'),
    (b"\\n", b"\n"),
    (b"\\t", b"\t"),
    (b"\\r", b"\r"),
    (b"\\/", b"/"),
    (b"\\b", b"\b"),
    (b"\\f", b"\f"),
)


def json_unescape(raw: bytes) -> bytes:
    """*raw* with JSON string escapes decoded (UTF-8; lone surrogates kept as
    surrogatepass), so string contents read as the redactor sees them decoded. A broken
    ``\\u`` escape is left as it is."""
    if b"\\" not in raw:
        return raw
    s = raw.replace(b"\\\\", b"\x00")  # no raw NUL in valid JSON
    for esc, ch in _SIMPLE_ESCAPES:
        if esc in s:
            s = s.replace(esc, ch)
    if b"\\u" in s:
        parts = s.split(b"\\u")
        buf = [parts[0]]
        for part in parts[1:]:
            try:
                ch = chr(int(part[:4], 16)).encode("utf-8", "surrogatepass")
            except ValueError:
                buf.append(b"\\u" + part)
                continue
            buf.append(ch + part[4:] if len(part) >= 4 else b"\\u" + part)
        s = b"".join(buf)
    return s.replace(b"\x00", b"\\")


def _escape_start(raw: bytes, a: int) -> int:
    """*a* moved past an escape's letters when ``raw[a]`` follows an escaping
    backslash (``\\npassword``: the name starts after the ``n``)."""
    k = a
    while k > 0 and raw[k - 1] == 0x5C:
        k -= 1
    if (a - k) % 2 == 0:
        return a
    return a + 5 if raw[a : a + 1] == b"u" else a + 1


def _gate_assign(raw: bytes, low: bytes, setctx: bool) -> bool:
    n = len(raw)
    tk = b""
    for anchor in _ANCHORS:
        i = low.find(anchor)
        while i >= 0:
            if not tk:
                tk = raw.translate(_KEY_TABLE)
            e = tk.find(b" ", i)
            if e < 0:
                e = n
            if anchor == b"sig=":
                e = i + 3
            nxt = low.find(anchor, e)
            # the operator first (cheap): most mentions of "token" or "pass" have none
            p = e
            for _ in range(2):
                if raw[p : p + 2] == b'\\"':
                    p += 2
                elif p < n and raw[p] in (0x22, 0x27, 0x5D):
                    p += 1
            q = p
            while True:
                if p < n and raw[p] in _SPACE:
                    p += 1
                elif raw[p : p + 2] == b"\\t":
                    p += 2
                else:
                    break
            c = raw[p : p + 2]
            op = (c[:1] == b"=" and c != b"==") or (c[:1] == b":" and c != b"::")
            a = tk.rfind(b" ", 0, i) + 1
            a = _escape_start(raw, a)
            if not op and not (p > q and (setctx or raw[a : a + 1] == b"-")):
                i = nxt
                continue
            i = nxt
            if a >= e:
                continue
            ident = raw[a:e]
            if ident == b"sig":
                if a > 0 and raw[a - 1] in (0x3F, 0x26):
                    return True
            elif sensitive_key(ident, ident[:1] == b"-") is not None:
                return True
    return False


def _gate_urls(raw: bytes) -> bool:
    i = raw.find(b"://")
    n = len(raw)
    while i >= 0:
        j = i + 3
        i = raw.find(b"://", j)
        e = j
        lim = min(n, j + 2048)
        while e < lim and raw[e] > 0x20 and raw[e] not in _URL_END:
            e += 1
        if e < lim and raw[e] == 0x5C and raw[e + 1 : e + 2] == b"u":
            return True  # an escaped character: decide on the decoded text
        at = raw.rfind(b"@", j, e)
        if at >= 0 and raw.find(b":", j, at) >= 0:
            return True
    return False


def _gate_tools(raw: bytes, low: bytes) -> bool:
    """Every tool shape starts with an option after a space (`` -p``, `` -u``,
    `` --user``, ``htpasswd -b``): one pass over `` -`` instead of one per tool name."""
    n = len(raw)
    first: dict[bytes, int] | None = None
    f = raw.find(b" -")
    while f >= 0:
        p = f + 2
        f = raw.find(b" -", p)
        c = raw[p : p + 1]
        if not c.isalpha() and not (c == b"-" and raw[p + 1 : p + 5] == b"user"):
            continue
        if first is None:  # where each tool is first named, looked up once
            first = {t: low.find(t) for t, _, _ in _TOOL_FLAGS}
            first[b"htpasswd "] = low.find(b"htpasswd ")
        if 0 <= first[b"htpasswd "] < p:
            return True
        for tool, flag, _ in _TOOL_FLAGS:
            if flag[2:3] == c and 0 <= first[tool] < p:
                return True
        if c not in (b"u", b"U", b"-"):
            continue
        sep = 0x25 if c == b"U" else 0x3A
        p += 5 if c == b"-" else 1
        if p >= n or raw[p] not in b" \t=":
            continue
        p += 1
        while p < n and raw[p] in _SPACE:
            p += 1
        e = p
        while e < n and raw[e] not in _VALUE_END and raw[e] != 0x5C:
            if raw[e] == sep:
                return True
            e += 1
        if e < n and raw[e] in (0x5C, 0x22, 0x27, 0x60):
            return True  # an escape or a quoted value: decide on the decoded text
    return False


def _gate_tokens(raw: bytes) -> bool:
    """Token runs, probed without ``.``: every token rule needs 20 characters without a
    dot (an entropy-tested part, or a vendor prefix and its tail), so dotted names
    (``os.path.join``) are never candidates; a candidate is then judged on its whole
    dotted run, exactly as :func:`scan` does."""
    t = raw.translate(_PROBE_TABLE)
    n = len(raw)
    i = t.find(_RUN_PROBE)
    dotted = b""
    done = -1
    found: list[Span] = []
    while i >= 0:
        e = t.find(b" ", i)
        if e < 0:
            e = n
        nxt = t.find(_RUN_PROBE, e)
        run = raw[i:e]
        # the entropy rule needs both cases; without them only a vendor prefix can hit
        if (
            (run.islower() or run.isupper())
            and b"/" not in run
            and raw[i - 1 : i] not in (b".", b"\\")
            and not run.lstrip(b"-_+").startswith(_PREFIX_STARTS)
        ):
            i = nxt
            continue
        if not dotted:
            dotted = raw.translate(_RUN_TABLE)
        a = dotted.rfind(b" ", 0, i) + 1
        b = dotted.find(b" ", e)
        if b < 0:
            b = n
        if a > done:
            done = a
            a = _escape_start(raw, a)
            if b - a >= 10:
                _token_run(raw, a, b, found)
                if found:
                    return True
        i = nxt
    return False


def _ascii_escapes(raw: bytes) -> bool:
    """``\\u0041``-style escapes of printable ASCII or ``\\/``: never written by
    Node's or Python's JSON encoders; they could hide a shape from the raw gates."""
    if raw.find(b"\\/") >= 0:
        return True
    i = raw.find(b"\\u00")
    while i >= 0:
        if raw[i + 4 : i + 5] in (b"2", b"3", b"4", b"5", b"6", b"7"):
            return True
        i = raw.find(b"\\u00", i + 5)
    return False


def may_contain_secret(raw: bytes, extra: tuple[bytes, ...] = ()) -> bool:
    """True when the redactor may change *raw* (a JSON event), so it must run; False
    means no built-in rule finds a secret in any string of *raw*.

    Cheap gates on the raw bytes come first (each a necessary condition of a rule,
    allowing for JSON escapes); only when one passes is the event un-escaped and
    scanned for real, so ordinary code that merely mentions ``token`` stays cheap.

    :param extra: lower-case literals of custom patterns (their ``triggers``).
    """
    low = raw.lower()
    for t in extra:
        if low.find(t) >= 0:
            return True
    if not (
        low.find(b"-----begin ") >= 0
        or low.find(b"bearer") >= 0
        or _ascii_escapes(raw)
        or _gate_urls(raw)
        or _gate_assign(raw, low, any(c in raw for c in _SET_CONTEXTS))
        or _gate_tools(raw, low)
        or _gate_tokens(raw)
    ):
        return False
    return bool(scan(json_unescape(raw), first=True))
