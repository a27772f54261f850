"""Redaction measured on corpora: every planted secret shape is caught, ordinary code is
left alone, and the hot path's prefilter agrees with the redactor.

The secret corpus (``redaction_corpus/secrets.jsonl``) holds *shapes*: templates whose
``{gen:N}`` fields are filled here with synthetic random values, so no secret-looking
literal is committed. The clean corpus is this repository's own files, the Python
standard library and pip's sources (vendored third-party packages included), each shown
the way Claude Code shows it: a ``PostToolUse`` ``Read`` event.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import string
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pip
import pytest
from hookutil import SID, event, hook_env, run_hook, state_root
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_state.adapters.claude_code import hot
from claude_state.plugins import redaction_literals
from claude_state.plugins.redaction import Redactor
from claude_state.plugins.redaction_literals import may_contain_secret
from claude_state.storage.blobs import BlobStore
from claude_state.storage.layout import StateDir

CORPUS = Path(__file__).parent / "redaction_corpus" / "secrets.jsonl"
REPO = Path(__file__).resolve().parent.parent
FAMILIES = {
    "aws",
    "gcp",
    "azure",
    "cloud",
    "vcs",
    "registry",
    "payment",
    "chat",
    "comms",
    "database",
    "keyed_json",
    "private_key",
    "jwt",
    "framework",
    "ai",
    "cli",
}

# -- the secret corpus ----------------------------------------------------------------

B62 = string.ascii_letters + string.digits
CHARSETS = {
    "b62": B62,
    "b64": B62 + "+/",
    "b64url": B62 + "-_",
    "hex": "0123456789abcdef",
    "dig": string.digits,
    "up": string.ascii_uppercase + string.digits,
    "low": string.ascii_lowercase + string.digits,
    "b32": string.ascii_uppercase + "234567",
    "word": string.ascii_letters,
    "pw": B62 + "!#%^*~_.-+=",
    "django": string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)",
}


def _field(rng: random.Random, gen: str, n: int) -> tuple[str, list[str]]:
    """A random value for ``{gen:n}`` and the parts of it that must not survive."""
    if gen in CHARSETS:
        v = "".join(rng.choice(CHARSETS[gen]) for _ in range(n))
        return v, [v]
    if gen == "pem":
        lines = ["".join(rng.choice(CHARSETS["b64"]) for _ in range(64)) for _ in range(n)]
        return "\n".join(lines), lines
    if gen == "uuid":
        h = "".join(rng.choice(CHARSETS["hex"]) for _ in range(32))
        v = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return v, [v]
    if gen == "dollar":
        v = "$" + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))
        return v, [v]
    if gen == "pct":  # URL-encoded base64 (Azure SAS ``sig=``)
        raw = "".join(rng.choice(CHARSETS["b64"]) for _ in range(n))
        v = raw.replace("+", "%2B").replace("/", "%2F") + "%3D"
        return v, [raw.replace("+", "").replace("/", "")[:12]]
    if gen == "azure":
        v = _field(rng, "b62", 3)[0] + "8Q~" + _field(rng, "b64url", 31)[0]
        return v, [v]
    if gen == "discord":
        ident = str(rng.randrange(10**17, 10**18)).encode()
        a = base64.b64encode(ident).decode().rstrip("=")
        b, c = _field(rng, "b64url", 6)[0], _field(rng, "b64url", 38)[0]
        return f"{a}.{b}.{c}", [f"{a}.{b}", c]
    if gen == "jwt":
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
        head = enc({"alg": "HS256", "typ": "JWT"})
        body = enc({"sub": _field(rng, "b62", 12)[0], "exp": rng.randrange(10**9, 2 * 10**9)})
        sig = _field(rng, "b64url", 43)[0]
        return f"{head}.{body}.{sig}", [body, sig]
    raise AssertionError(f"unknown generator {gen}")


def _fill(template: str, rng: random.Random) -> tuple[str, list[str]]:
    out: list[str] = []
    secrets: list[str] = []
    i = 0
    while True:
        j = template.find("{", i)
        k = template.find("}", j + 1) if j >= 0 else -1
        spec = template[j + 1 : k] if j >= 0 and k >= 0 else ""
        if not spec or not all(c.isalnum() or c in "_:" for c in spec):
            if j < 0 or k < 0:
                out.append(template[i:])
                return "".join(out), secrets
            out.append(template[i : j + 1])
            i = j + 1
            continue
        out.append(template[i:j])
        gen, _, n = spec.partition(":")
        public = gen.startswith("pub_")
        value, parts = _field(rng, gen.removeprefix("pub_"), int(n or 0))
        out.append(value)
        if not public:
            secrets.extend(parts)
        i = k + 1


def templates() -> list[dict[str, str]]:
    lines = CORPUS.read_text().splitlines()
    return [d for d in map(json.loads, lines) if "template" in d]


def cases(seeds: tuple[int, ...] = (1, 2)) -> list[tuple[str, str, list[str]]]:
    """``(family, text, secret parts)`` for every template and seed."""
    out = []
    for n, t in enumerate(templates()):
        for seed in seeds:
            text, secrets = _fill(t["template"], random.Random(seed * 100_003 + n))
            assert secrets, t
            out.append((t["family"], text, secrets))
    return out


READ_AROUND = "import os\n\n\ndef main() -> None:\n    print(os.getcwd())\n\n"


def events_for(text: str) -> list[bytes]:
    """*text* where a real session puts it: a command, a command's output, a file."""
    bash_in = event("PreToolUse", tool_name="Bash", tool_input={"command": text})
    bash_out = event(
        "PostToolUse",
        tool_name="Bash",
        tool_input={"command": "./run.sh"},
        tool_response={"stdout": "starting\n" + text + "\ndone\n", "stderr": ""},
    )
    return [bash_in, bash_out, read_event("/app/config.py", READ_AROUND + text + "\n")]


def read_event(path: str, content: str) -> bytes:
    """A ``PostToolUse`` of ``Read`` as Claude Code 2.1 sends it (compact, UTF-8)."""
    n = content.count("\n") + 1
    doc = {
        "session_id": SID,
        "transcript_path": f"/home/dev/.claude/projects/-app/{SID}.jsonl",
        "cwd": "/app",
        "permission_mode": "default",
        "effort": {"level": "medium"},
        "hook_event_name": "PostToolUse",
        "tool_name": "Read",
        "tool_input": {"file_path": path},
        "tool_response": {
            "type": "text",
            "file": {
                "filePath": path,
                "content": content,
                "numLines": n,
                "startLine": 1,
                "totalLines": n,
            },
        },
        "tool_use_id": "toolu_01XFDUDYJgAACzvnptvVoYEL",
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def leaked(data: bytes, secrets: list[str]) -> list[str]:
    """The secret parts (or 8-character pieces of long ones) still present in *data*."""
    found = []
    for s in secrets:
        b = s.encode()
        if b in data:
            found.append(s)
        elif len(b) >= 16 and any(b[i : i + 8] in data for i in range(len(b) - 7)):
            found.append(s + " (a piece)")
    return found


def test_corpus_has_100_shapes_across_families() -> None:
    ts = templates()
    assert len(ts) >= 100
    assert {t["family"] for t in ts} >= FAMILIES
    assert len({t["template"] for t in ts}) == len(ts), "duplicate shapes"


def test_recall_every_corpus_secret_is_redacted_and_trips_the_prefilter() -> None:
    r = Redactor()
    total = 0
    missed: list[str] = []
    unflagged: list[str] = []
    for family, text, secrets in cases():
        for raw in events_for(text):
            total += 1
            if not may_contain_secret(raw):
                unflagged.append(f"{family}: {text[:80]!r}")
            out = r.redact_json_bytes(raw)
            json.loads(out)  # still valid JSON
            bad = leaked(out, secrets)
            if bad:
                missed.append(f"{family}: {text[:80]!r} leaks {bad}")
    print(
        f"\nredaction recall: {total - len(missed)}/{total} events clean; prefilter "
        f"flagged {total - len(unflagged)}/{total}"
    )
    assert not missed, "\n".join(missed)
    assert not unflagged, "\n".join(unflagged)


def test_no_corpus_secret_reaches_the_state_dir_through_the_hook(tmp_path: Path) -> None:
    """Every corpus secret, through the real hook code (hot path for tool events, the
    cold path for prompts), then every file of the state dir and every blob's content."""
    env = {"CLAUDE_STATE_DIR": str(tmp_path / "state"), "CLAUDE_STATE_STRICT": "1"}
    all_secrets: list[str] = []
    start = event("SessionStart", source="startup")
    assert hot.handle(start, None, env)[0] == 0
    for n, (_family, text, secrets) in enumerate(cases(seeds=(3,))):
        all_secrets.extend(secrets)
        raw = events_for(text)[n % 3]
        assert hot.handle(raw, None, env) == (0, b"")
        prompt = event("UserPromptSubmit", prompt="deploy with " + text)
        assert hot.handle(prompt, None, env)[0] == 0
    assert hot.handle(event("Stop", stop_hook_active=False), None, env)[0] == 0
    root = tmp_path / "state"
    store = BlobStore(StateDir(root))
    data = [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    data += [store.get(h) for h in store]
    assert sum(len(d) for d in data) > 100_000  # the events are there, redacted
    blob = b"\n".join(data)
    bad = leaked(blob, all_secrets)
    assert not bad, bad[:10]


def test_no_corpus_secret_reaches_the_journal_through_the_hook_process(tmp_path: Path) -> None:
    """The same through the real hook process: one Bash output holding every shape."""
    env = hook_env(tmp_path)
    every = cases(seeds=(4,))
    text = "\n".join(t for _f, t, _s in every)
    raw = event("PostToolUse", tool_name="Bash", tool_response={"stdout": text, "stderr": ""})
    assert len(raw) < 256 * 1024  # the hot path (under the inline limit)
    r = run_hook(raw, env)
    assert r.returncode == 0, r.stderr
    wal = (state_root(tmp_path) / "sessions" / f"{SID}.wal").read_bytes()
    assert wal.count(b"[REDACTED:") >= len(every)
    bad = leaked(wal, [s for _f, _t, secrets in every for s in secrets])
    assert not bad, bad[:10]


# -- the clean corpus -------------------------------------------------------------------

TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".json", ".yaml", ".yml", ".sh"}


def _files(root: Path, pattern: str = "**/*") -> Iterator[Path]:
    for p in sorted(root.glob(pattern)):
        rel = p.relative_to(root).parts
        if any(x.startswith(".") or x == "__pycache__" for x in rel[:-1]):
            continue
        if p.suffix in TEXT_SUFFIXES and p.is_file():
            yield p


def repo_files() -> list[Path]:
    return [p for p in _files(REPO) if ".venv" not in p.parts]


def pip_files() -> list[Path]:
    return list(_files(Path(pip.__file__).parent))


def stdlib_files() -> list[Path]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    return list(_files(lib, "*.py")) + [
        p for sub in ("email", "json", "http", "asyncio", "logging") for p in _files(lib / sub)
    ]


def _read(p: Path) -> str | None:
    try:
        return p.read_text("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def hot_share(files: list[Path]) -> tuple[int, int, list[str]]:
    """``(files kept on the hot path, files, the others)`` with each file shown as Read
    output (the first 200,000 characters: larger events take the cold path anyway)."""
    hot_n = 0
    tripped = []
    for p in files:
        text = _read(p)
        if text is None:
            continue
        if may_contain_secret(read_event(str(p), text[:200_000])):
            tripped.append(str(p))
        else:
            hot_n += 1
    return hot_n, hot_n + len(tripped), tripped


def changed_lines(files: list[Path]) -> tuple[int, int, list[str]]:
    """``(lines the redactor changes, lines)`` over *files*, each line on its own."""
    r = Redactor()
    changed = 0
    total = 0
    shown = []
    for p in files:
        text = _read(p)
        if text is None:
            continue
        lines = text.splitlines()
        total += len(lines)
        if not may_contain_secret(read_event(str(p), text)):
            continue  # the prefilter's "no" is exact (tests below): nothing would change
        for line in lines:
            if r.redact_text(line) != line:
                changed += 1
                shown.append(f"{p.name}: {line.strip()[:100]}")
    return changed, total, shown


@pytest.mark.parametrize("name", ["repo", "pip"])
def test_hot_share_at_least_95_percent(name: str) -> None:
    files = repo_files() if name == "repo" else pip_files()
    hot_n, n, tripped = hot_share(files)
    print(f"\n{name}: {hot_n}/{n} files ({100 * hot_n / n:.1f} %) stay on the hot path")
    assert n > 100
    assert hot_n >= 0.95 * n, tripped


@pytest.mark.parametrize("name", ["repo", "pip", "stdlib"])
def test_false_positives_under_1_percent_of_lines(name: str) -> None:
    files = {"repo": repo_files, "pip": pip_files, "stdlib": stdlib_files}[name]()
    changed, total, shown = changed_lines(files)
    print(f"\n{name}: {changed}/{total} ordinary lines changed ({100 * changed / total:.3f} %)")
    assert total > 10_000
    assert changed < 0.01 * total, shown[:50]


# -- the prefilter and the redactor agree -------------------------------------------------


def _forced(raw: bytes) -> bytes:
    """The redactor's answer with the prefilter bypassed (what it would change)."""

    class Always(Redactor):
        def may_match(self, raw: bytes) -> bool:
            return True

    return Always().redact_json_bytes(raw)


@functools.cache
def changed_events() -> tuple[bytes, ...]:
    """Events the redactor changes: the secret corpus in every position, every line of
    this repository the redactor changes (as Bash output), and escape tricks."""
    evs = [e for _f, text, _s in cases(seeds=(5,)) for e in events_for(text)]
    r = Redactor()
    for p in repo_files():
        text = _read(p) or ""
        for line in text.splitlines():
            if r.redact_text(line) != line:
                evs.append(event("PostToolUse", tool_name="Bash", tool_response={"stdout": line}))
    # an ASCII character written as \u escape (never by Node or Python encoders)
    evs.append(
        b'{"session_id":"' + SID.encode() + b'","hook_event_name":"PostToolUse",'
        b'"tool_response":{"stdout":"\\u0070wd=a1b2c3"}}'
    )
    return tuple(e for e in evs if _forced(e) != e)


def unflagged(evs: tuple[bytes, ...]) -> list[bytes]:
    return [e for e in evs if not may_contain_secret(e)]


def test_prefilter_flags_everything_the_redactor_changes() -> None:
    evs = changed_events()
    assert len(evs) > 300  # the check has something to bite on
    bad = unflagged(evs)
    assert not bad, [b[:200] for b in bad[:5]]


@pytest.mark.parametrize(
    "gate", ["_gate_urls", "_gate_assign", "_gate_tools", "_gate_tokens", "_ascii_escapes"]
)
def test_control_a_disabled_prefilter_rule_is_caught(
    gate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: switch one prefilter gate off and the agreement check finds events the
    redactor changes that the prefilter now lets through."""
    evs = changed_events()
    monkeypatch.setattr(redaction_literals, gate, lambda *a: False)
    assert unflagged(evs), f"switching {gate} off went unnoticed"


# Fragments that make secret shapes when glued together in random order.
FRAGMENTS = [
    "password",
    "DB_PASS",
    "api_key",
    "token",
    "secret",
    "pwd",
    "accessToken",
    "key",
    "=",
    ": ",
    " = ",
    ":",
    '"',
    "'",
    "\\",
    "\n",
    "\t",
    " ",
    "-",
    "--",
    "://",
    "@",
    "/",
    "$",
    "${X}",
    "<pw>",
    "***",
    "(",
    ")",
    ".",
    ",",
    "&",
    "?",
    "%",
    "hunter2",
    "abc",
    "12345",
    "x",
    "AKIA",
    "ghp_",
    "sk-",
    "xoxb-",
    "eyJ",
    "Bearer ",
    "-----BEGIN ",
    "PRIVATE KEY-----",
    "-----END ",
    "mysql -p",
    "curl -u ",
    "sshpass -p ",
    "docker login -p ",
    "set ",
    "machine ",
    "redis://",
    "\u00e9",
    "\u2603",
    # token-shaped runs, built here so that this file holds none
    _field(random.Random(7), "b62", 32)[0],
    base64.b64encode(bytes(range(40, 68))).decode(),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14), st.booleans())
def test_property_redactor_change_implies_prefilter(parts: list[str], as_key: bool) -> None:
    text = "".join(parts)
    doc: dict[str, object] = {"session_id": SID, "hook_event_name": "PostToolUse"}
    doc["tool_response"] = {text: "v4lue-x9"} if as_key else {"stdout": text, "k": [text]}
    for ascii_only in (False, True):
        raw = json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":")).encode()
        if _forced(raw) != raw:
            assert may_contain_secret(raw), raw


def test_prefilter_imports_nothing_on_ordinary_code() -> None:
    """The prefilter answers a 100 KiB Read event of ordinary code without importing
    anything (``re`` costs ~10 ms of start-up; ``math`` is built in)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from claude_state.plugins.redaction_literals import may_contain_secret\n"
        "raw = sys.stdin.buffer.read()\n"
        "before = set(sys.modules)\n"
        "assert not may_contain_secret(raw)\n"
        "new = set(sys.modules) - before - {'math'}\n"
        "assert not new, new\n"
        "assert not [m for m in before if m.startswith('claude_state.') and 'redaction.' in m]\n"
    )
    text = (REPO / "claude_state" / "storage" / "journal.py").read_text()
    raw = read_event("/app/journal.py", (text * 10)[:100_000])
    r = subprocess.run([sys.executable, "-I", "-c", code], input=raw, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def test_digests_and_ids_are_not_secrets() -> None:
    """Random-looking but public: lockfile integrity hashes, go.sum, git SHAs, uuids,
    docker digests, Claude tool-use ids. Neither redacted nor sent off the hot path."""
    rng = random.Random(12)

    def b64(n: int) -> str:
        return base64.b64encode(rng.randbytes(n)).decode()

    def hx(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    lines = []
    for i in range(30):
        lines += [
            f'      "integrity": "sha512-{b64(64)}",',
            f"github.com/acme/mod{i} v1.2.{i} h1:{b64(32)}",
            f"commit {hx(40)}",
            f"image@sha256:{hx(64)}",
            f"request {hx(8)}-{hx(4)}-{hx(4)}-{hx(4)}-{hx(12)}",
            f'"tool_use_id":"toolu_01{_field(rng, "b62", 22)[0]}"',
        ]
    text = "\n".join(lines)
    raw = read_event("/app/package-lock.json", text)
    assert not may_contain_secret(raw)
    assert Redactor().redact_text(text) == text
