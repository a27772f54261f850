"""The program-wide rules of ``docs/cli-contract.md``, end to end through the real CLI.

``test_cli_workflow.py`` and ``test_cli_sessions.py`` check each command's keys and
refusals; this file checks what holds for *every* command: ``--json`` prints exactly one
JSON document and nothing else (errors: empty stdout, one ``claude-state: error:`` line,
no traceback), ``--version``, unknown flags, ids refused before any file is touched,
``--debug``, the console script and ``python -m claude_state`` agreeing, ``init``, the
documented state-dir resolution, and the 0700/0600 modes.

Every command runs in a child process. Children get a clean environment (no ``CLAUDE_*``
variables from a Claude Code session running the tests) and always an explicit state
directory, so nothing here can touch the repository's own ``.claude/state``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from claude_state.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "claude_code"
SID = "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35"  # the session of the fixtures
SCRIPT = Path(sys.executable).parent / "claude-state"
ERROR = "claude-state: error:"

DEFINITION = {
    "id": "rel",
    "name": "Release",
    "steps": [{"id": "plan"}, {"id": "build", "deps": ["plan"]}, {"id": "docs"}],
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Run:
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.argv = argv
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return (
            f"<{' '.join(self.argv)!r}: exit {self.code} out={self.out[:400]!r} "
            f"err={self.err[-400:]!r}>"
        )


def run(
    *args: str,
    state: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prog: list[str] | None = None,
    umask: int = -1,
) -> Run:
    argv = [*(prog or [sys.executable, "-m", "claude_state"])]
    if state is not None:
        argv += ["--state-dir", str(state)]
    argv += list(args)
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        cwd=cwd or ROOT,
        timeout=60,
        umask=umask,
    )
    return Run(argv, proc)


def run_many(calls: list[dict[str, Any]]) -> list[Run]:
    """Independent calls, concurrently (each a dict of :func:`run` keyword arguments)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: run(*c.pop("args"), **c), [dict(c) for c in calls]))


def one_json_document(text: str) -> Any:
    """The single JSON document *text* holds; fails on anything before or after it."""
    doc, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", f"more than one document on stdout: {text[end:][:200]!r}"
    return doc


def error_lines_ok(r: Run, usage: bool = False) -> list[str]:
    """What is wrong with an error's output: stdout must be empty, stderr one line
    beginning ``claude-state: error:`` (a usage error prints argparse's usage above it),
    and no traceback."""
    problems = []
    if r.out:
        problems.append(f"stdout not empty: {r.out[:200]!r}")
    lines = r.err.splitlines()
    flagged = [ln for ln in lines if ln.startswith(ERROR)]
    if len(flagged) != 1 or not lines or not lines[-1].startswith(ERROR):
        problems.append(f"not exactly one final error line: {r.err[-300:]!r}")
    elif not usage and len(lines) != 1:
        problems.append(f"stderr has more than the error line: {r.err[-300:]!r}")
    elif usage and not all(ln.startswith(("usage:", " ")) for ln in lines[:-1]):
        problems.append(f"unexpected lines above the usage error: {r.err[-300:]!r}")
    if "Traceback" in r.err:
        problems.append("traceback without --debug")
    return problems


def listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under *root* with its mode, size and mtime (ns)."""
    if not root.exists():
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def hook_input(name: str, **replace: str) -> str:
    text = (FIXTURES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state with a workflow mid-run, a checkpoint, and one crashed session."""
    state = tmp_path_factory.mktemp("contract") / "state"
    r = run("--json", "workflow", "create", "-", state=state, stdin=json.dumps(DEFINITION))
    assert r.code == 0, r
    for status in ("running", "completed"):
        assert run("workflow", "step", "rel", "plan", "--status", status, state=state).code == 0
    assert run("checkpoint", "create", "rel", "-m", "planned", state=state).code == 0
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        env = clean_env(CLAUDE_PID=str(agent.pid))
        for name in ("01-session-start.json", "02-user-prompt-submit.json"):
            r = run("hook", state=state, stdin=hook_input(name), env=env)
            assert r.code == 0 and r.err == "", r
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    yield state


def fresh(tmp_path: Path) -> Path:
    return tmp_path / "fresh" / "state"


# -- --json: exactly one document, for every command and action ---------------------------


_GROUPS = ("workflow", "checkpoint", "sessions")


def _leaves() -> set[tuple[str, ...]]:
    """Every runnable command path of the real parser: ``("gc",)``, ``("workflow", "show")``."""
    import argparse

    def below(p: argparse.ArgumentParser, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return {prefix}
        return {leaf for s in subs for n, c in s.choices.items() for leaf in below(c, (*prefix, n))}

    return below(build_parser(), ())


def _script(tmp: Path) -> list[tuple[list[str], str | None]]:
    """One successful --json call of every command and action, in an order that works."""
    bundle = str(tmp / "s.bundle")
    project = tmp / "proj"
    (project / ".git").mkdir(parents=True)
    cp = "{cp}"  # filled in once the checkpoint exists
    return [
        (["init"], None),
        (["workflow", "create", "-"], json.dumps({**DEFINITION, "id": "w2"})),
        (["workflow", "list"], None),
        (["workflow", "show", "w2", "--outputs", "--history", "--metrics"], None),
        (["workflow", "step", "w2", "plan", "--status", "running"], None),
        (["workflow", "step", "w2", "plan", "--status", "completed", "--output", "[1]"], None),
        (["workflow", "data", "w2", "k", '{"v": 1}'], None),
        (["workflow", "data", "w2", "k"], None),
        (["checkpoint", "create", "w2", "-m", "x", "--tag", "t"], None),
        (["checkpoint", "list", "w2"], None),
        (["checkpoint", "show", cp], None),
        (["checkpoint", "verify"], None),
        (["checkpoint", "suggest", "w2"], None),
        (["checkpoint", "restore", cp], None),
        (["workflow", "rollback", "w2", "--steps", "1"], None),
        (["workflow", "rollback", "w2", "--to", cp], None),
        (["workflow", "pause", "w2"], None),
        (["workflow", "resume", "w2"], None),
        (["workflow", "cancel", "w2"], None),
        (["workflow", "data", "w2", "k", "--delete"], None),
        (["status"], None),
        (["sessions", "list"], None),
        (["sessions", "show", SID], None),
        (["sessions", "events", SID], None),
        (["sessions", "export", SID, "-o", bundle], None),
        (["sessions", "import", bundle], None),
        (["recover", "--dry-run"], None),
        (["recover"], None),
        (["verify"], None),
        (["gc", "--keep", "5", "--dry-run"], None),
        (["install", "--dry-run"], None),
        (["install"], None),
        (["uninstall"], None),
        (["workflow", "delete", "w2"], None),
        (["demo"], None),
    ]


def test_json_prints_exactly_one_document_for_every_command(
    populated: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(populated, state)
    other = tmp_path / "other"  # sessions import goes to another state dir
    project = tmp_path / "proj"
    script = _script(tmp_path)
    covered: set[tuple[str, ...]] = set()
    problems: list[str] = []
    cp = ""
    for i, (args, stdin) in enumerate(script):
        args = [a.replace("{cp}", cp) for a in args]
        target = other if args[:2] == ["sessions", "import"] else state
        # --json after the command every other time: both places are accepted
        argv = ["--json", *args] if i % 2 else [*args, "--json"]
        if args[0] in ("install", "uninstall"):
            argv = ["--project", str(project), *argv]
        r = run(*argv, state=target, stdin=stdin)
        covered.add(tuple(args[:2]) if args[0] in _GROUPS else (args[0],))
        if r.code != 0:
            problems.append(f"failed: {r!r}")
            continue
        try:
            doc = one_json_document(r.out)
        except (AssertionError, ValueError) as exc:
            problems.append(f"not one JSON document: {exc} {r!r}")
            continue
        if args[:2] == ["checkpoint", "create"]:
            cp = doc["id"]
        warnings = [ln for ln in r.err.splitlines() if not ln.startswith("claude-state: warning:")]
        if warnings:
            problems.append(f"stderr beyond warnings: {r!r}")
    assert problems == []
    # Every command and action of the real parser went through this test (hook: below).
    assert _leaves() - covered == {("hook",)}


def test_hook_json_is_empty_or_one_object_naming_its_event(populated: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(populated, state)
    other = "aaaa0000-1111-2222-3333-444455556666"
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        env = clean_env(CLAUDE_PID=str(agent.pid))
        start = run(
            "--json",
            "hook",
            state=state,
            stdin=hook_input("01-session-start.json", **{SID: other}),
            env=env,
        )
        prompt = run(
            "hook",
            "--json",
            state=state,
            stdin=hook_input("02-user-prompt-submit.json", **{SID: other}),
            env=env,
        )
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    # A new session in a project with a crashed one is told about it.
    assert start.code == 0 and start.err == "", start
    doc = one_json_document(start.out)
    assert doc["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert SID in doc["hookSpecificOutput"]["additionalContext"]
    assert (prompt.code, prompt.out, prompt.err) == (0, "", "")


# -- errors: empty stdout, one error line, no traceback -----------------------------------


USAGE_ERRORS = [
    ["--bogus"],
    ["status", "--bogus"],
    ["workflow", "list", "--bogus"],
    ["checkpoint", "list", "--bogus"],
    ["sessions", "list", "--crashed", "--active"],
    ["nosuch"],
    ["workflow"],
    ["sessions"],
    ["workflow", "show"],
    ["workflow", "rollback", "rel"],
    ["gc", "--keep", "x"],
    ["install", "--scope", "galaxy"],
    ["status", "--state-dir", "/tmp"],  # global options go before the command
    ["init", "extra"],
]


def test_unknown_flags_and_usage_errors_exit_2(populated: Path) -> None:
    before = listing(populated)
    results = run_many([{"args": ["--json", *a], "state": populated} for a in USAGE_ERRORS])
    problems = [
        f"{r!r}: {p}"
        for r in results
        for p in ([f"exit {r.code}"] if r.code != 2 else []) + error_lines_ok(r, usage=True)
    ]
    assert problems == []
    assert listing(populated) == before


def test_runtime_errors_print_one_line(populated: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(b"not a bundle")
    settings = tmp_path / "proj" / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{bad")
    cases = [
        (3, ["workflow", "show", "ghost"]),
        (3, ["checkpoint", "show", "cp-ghost"]),
        (3, ["sessions", "show", "ghost"]),
        (3, ["sessions", "events", "ghost"]),
        (3, ["sessions", "export", "ghost"]),
        (3, ["sessions", "import", str(tmp_path / "missing.bundle")]),
        (1, ["sessions", "import", str(damaged)]),
        (3, ["recover", "ghost"]),
        (4, ["workflow", "step", "rel", "plan", "--status", "running"]),
        (2, ["workflow", "step", "rel", "build", "--status", "running", "--output", "{"]),
        (2, ["gc", "--older-than", "soon"]),
        (2, ["--project", str(settings.parent.parent), "install"]),
    ]
    results = run_many([{"args": ["--json", *a], "state": populated} for _, a in cases])
    problems = [
        f"{r!r}: {p}"
        for (code, _), r in zip(cases, results, strict=True)
        for p in ([f"exit {r.code}, expected {code}"] if r.code != code else []) + error_lines_ok(r)
    ]
    assert problems == []
    assert settings.read_text() == "{bad"  # refused and left untouched


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    r = run("--json", state=tmp_path / "state")
    assert r.code == 2
    assert error_lines_ok(r, usage=True) == []


# -- --version, and the two ways to run the program ---------------------------------------


def test_version() -> None:
    from importlib.metadata import version

    r = run("--version")
    assert (r.code, r.out, r.err) == (0, f"claude-state {version('claude-state')}\n", "")


def _script_env() -> dict[str, str]:
    """The environment a user's shell gives the console script (no PYTHONPATH)."""
    return {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}


@pytest.mark.skipif(not SCRIPT.exists(), reason="no claude-state console script next to python")
def test_console_script_and_python_m_are_the_same_program(populated: Path, tmp_path: Path) -> None:
    env = _script_env()
    cases = [
        ["--help"],
        ["workflow", "--help"],
        ["--json", "status"],
        ["--json", "workflow", "list"],
        ["--json", "workflow", "show", "rel"],
        ["--json", "sessions", "list"],
        ["--json", "--bogus"],
        ["--json", "workflow", "show", "ghost"],
        ["--json", "workflow", "show", "../x"],
    ]
    calls = []
    for args in cases:
        for prog in ([str(SCRIPT)], [sys.executable, "-m", "claude_state"]):
            calls.append(
                {"args": args, "state": populated, "env": env, "cwd": tmp_path, "prog": prog}
            )
    results = run_many(calls)
    for i, args in enumerate(cases):
        script, module = results[2 * i], results[2 * i + 1]
        assert (script.code, script.out, script.err) == (module.code, module.out, module.err), args
    assert results[0].code == 0 and results[0].out.startswith("usage: claude-state")


@pytest.mark.skipif(not SCRIPT.exists(), reason="no claude-state console script next to python")
def test_console_script_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    r = run("--version", prog=[str(SCRIPT)], env=_script_env(), cwd=tmp_path)
    assert (r.code, r.out, r.err) == (0, f"claude-state {version('claude-state')}\n", "")


# -- invalid ids: exit 2, nothing touched ---------------------------------------------------

#: Every place an id is taken from the command line; ``X`` is replaced by the bad id.
ID_COMMANDS = [
    ["workflow", "show", "X"],
    ["workflow", "step", "X", "plan", "--status", "running"],
    ["workflow", "step", "rel", "X", "--status", "running"],
    ["workflow", "pause", "X"],
    ["workflow", "resume", "X"],
    ["workflow", "cancel", "X"],
    ["workflow", "delete", "X"],
    ["workflow", "rollback", "X", "--steps", "1"],
    ["workflow", "rollback", "rel", "--to", "X"],
    ["workflow", "data", "X", "k"],
    ["workflow", "data", "X", "k", "1"],
    ["checkpoint", "create", "X"],
    ["checkpoint", "list", "X"],
    ["checkpoint", "show", "X"],
    ["checkpoint", "restore", "X"],
    ["checkpoint", "verify", "X"],
    ["checkpoint", "suggest", "X"],
    ["sessions", "show", "X"],
    ["sessions", "events", "X"],
    ["sessions", "export", "X"],
    ["recover", "X"],
]
BAD_IDS = {
    "dotdot": "../x",
    "slash": "a/b",
    "empty": "",
    "long": "a" * 200,
    # A NUL byte cannot be passed in argv (execve takes C strings): see
    # test_nul_byte_in_a_definition_id_is_refused for the one way to send one.
}


def _subst(args: list[str], bad: str) -> list[str]:
    return [bad if a == "X" else a for a in args]


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_invalid_ids_exit_2_and_touch_nothing(populated: Path, bad: str) -> None:
    before = listing(populated)
    results = run_many(
        [{"args": ["--json", *_subst(a, bad)], "state": populated} for a in ID_COMMANDS]
    )
    problems = [
        f"{r!r}: {p}"
        for r in results
        for p in ([f"exit {r.code}"] if r.code != 2 else []) + error_lines_ok(r)
    ]
    assert problems == []
    assert listing(populated) == before


@pytest.mark.parametrize(
    "args",
    ID_COMMANDS,
    ids=[" ".join(a) for a in ID_COMMANDS],
)
def test_invalid_id_creates_no_state_dir(tmp_path: Path, args: list[str]) -> None:
    state = fresh(tmp_path)
    r = run("--json", *_subst(args, "../x"), state=state)
    assert r.code == 2, r
    assert error_lines_ok(r) == []
    assert listing(state.parent) == {}, "the refusal created files"


@pytest.mark.parametrize(
    "definition",
    [
        {"id": "../x", "steps": [{"id": "a"}]},
        {"id": "", "steps": [{"id": "a"}]},
        {"id": "a" * 200, "steps": [{"id": "a"}]},
        {"id": "ok", "steps": [{"id": "a/b"}]},
    ],
    ids=["dotdot", "empty", "long", "step-slash"],
)
def test_invalid_definition_ids_create_nothing(tmp_path: Path, definition: Any) -> None:
    state = fresh(tmp_path)
    r = run("--json", "workflow", "create", "-", state=state, stdin=json.dumps(definition))
    assert r.code == 2 and error_lines_ok(r) == [], r
    assert listing(state.parent) == {}, "the refusal created files"


def test_nul_byte_in_a_definition_id_is_refused(populated: Path) -> None:
    before = listing(populated)
    for definition in (
        {"id": "a\u0000b", "steps": [{"id": "s"}]},
        {"id": "nul", "steps": [{"id": "s\u0000"}]},
    ):
        r = run("--json", "workflow", "create", "-", state=populated, stdin=json.dumps(definition))
        assert r.code == 2 and error_lines_ok(r) == [], r
    assert listing(populated) == before


# -- --debug ---------------------------------------------------------------------------------


def test_debug_shows_a_traceback_on_an_os_error(tmp_path: Path) -> None:
    """An OS error is named plainly (path and reason); --debug adds the traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    state = blocker / "state"  # cannot be created: an OS error inside a command
    quiet = run("--json", "workflow", "list", state=state)
    loud = run("--json", "--debug", "workflow", "list", state=state)
    env_loud = run("--json", "workflow", "list", state=state, env=clean_env(CLAUDE_STATE_DEBUG="1"))
    assert quiet.code == loud.code == env_loud.code == 1
    assert error_lines_ok(quiet) == [], quiet
    assert "Not a directory" in quiet.err and str(blocker) in quiet.err
    assert "Traceback" not in quiet.err
    for r in (loud, env_loud):
        assert r.out == "" and "Traceback (most recent call last)" in r.err, r
        assert r.err.splitlines()[-1].startswith(ERROR), r


def test_debug_traceback_for_a_refusal_too(populated: Path) -> None:
    r = run("--debug", "workflow", "show", "ghost", state=populated)
    assert r.code == 3 and "Traceback" in r.err and r.err.splitlines()[-1].startswith(ERROR)


# -- init and where the state lives ----------------------------------------------------------


def test_init_json_and_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "s"
    first = run("--json", "init", state=state)
    assert first.code == 0 and first.err == "", first
    assert one_json_document(first.out) == {
        "state_dir": str(state),
        "gitignore": str(state / ".gitignore"),
    }
    before = listing(state)
    assert sorted(before) == sorted(
        [".gitignore", "blobs", "checkpoints", "logs", "sessions", "temp", "workflows"]
    )
    second = run("init", "--json", state=state)
    assert (second.code, second.out, second.err) == (0, first.out, "")
    assert listing(state) == before


def test_state_dir_resolution_order(tmp_path: Path) -> None:
    """``--state-dir``, ``$CLAUDE_STATE_DIR``, ``--project``, ``$CLAUDE_PROJECT_DIR``, the
    nearest ancestor with ``.claude/`` or ``.git``, the working directory."""
    for parent in tmp_path.parents:
        if (parent / ".claude").is_dir() or (parent / ".git").exists():
            pytest.skip(f"{parent} holds .claude/ or .git: no cwd fallback to test")
    repo = tmp_path / "repo"
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    (other / ".claude").mkdir()
    bare = tmp_path / "bare"
    bare.mkdir()

    def where(*args: str, cwd: Path = deep, env: dict[str, str] | None = None) -> str:
        r = run("--json", *args, "init", env=clean_env(**(env or {})), cwd=cwd)
        assert r.code == 0, r
        return str(one_json_document(r.out)["state_dir"])

    flag, env_state = tmp_path / "flag", tmp_path / "env-state"
    both = {"CLAUDE_STATE_DIR": str(env_state), "CLAUDE_PROJECT_DIR": str(other)}
    project_env = {"CLAUDE_PROJECT_DIR": str(other)}
    assert where("--state-dir", str(flag), "--project", str(bare), env=both) == str(flag)
    assert where("--project", str(bare), env=both) == str(env_state)
    assert where("--project", str(bare), env=project_env) == str(bare / ".claude" / "state")
    assert where(env=project_env) == str(other / ".claude" / "state")
    assert where() == str(repo / ".claude" / "state")  # .git two levels up
    assert where(cwd=other / "x") == str(other / ".claude" / "state")  # .claude/ one up
    assert where(cwd=bare) == str(bare / ".claude" / "state")  # nothing: the cwd


# -- modes ---------------------------------------------------------------------------------


def test_folders_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        env = clean_env(CLAUDE_PID=str(agent.pid))
        r = run("workflow", "create", "-", state=state, stdin=json.dumps(DEFINITION), umask=0)
        assert r.code == 0, r
        for name in sorted(os.listdir(FIXTURES))[:8]:  # start, prompt, tool calls
            r = run("hook", state=state, stdin=hook_input(name), env=env, umask=0)
            assert r.code == 0 and r.err == "", r
        big = json.dumps("x" * 100_000)  # a large output goes to the blob store
        for args in (
            ["workflow", "step", "rel", "plan", "--status", "running"],
            ["workflow", "step", "rel", "plan", "--status", "completed", "--output", big],
            ["checkpoint", "create", "rel"],
        ):
            assert run(*args, state=state, umask=0).code == 0
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    seen = {"dirs": 0, "files": 0}
    wrong = []
    for rel, (mode, _size, _mtime) in {
        ".": (os.stat(state).st_mode, 0, 0),
        **listing(state),
    }.items():
        kind = "dirs" if stat.S_ISDIR(mode) else "files"
        seen[kind] += 1
        want = 0o700 if kind == "dirs" else 0o600
        if stat.S_IMODE(mode) != want:
            wrong.append(f"{rel}: {stat.S_IMODE(mode):o}")
    assert wrong == []
    assert seen["files"] >= 8, seen  # workflow, session, journal, lease, checkpoint, blob...
    assert any(p.suffix == ".blob" for p in state.rglob("*")), "no blob was written"
