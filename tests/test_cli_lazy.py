"""The CLI imports only what the command it runs needs (``claude_state/cli/main.py``).

``claude-state hook`` is the Claude Code hook (it runs on every tool call when installed
that way), so it is answered before any parser is built: no ``argparse``, no command
module but ``cmd_hook``, nothing of the cold path for a tool event. ``--help`` lists
every command from a static table without importing the command modules, and a
command imports its own module only.

Each check runs ``main`` in a fresh interpreter started with ``-S`` (no ``site``: an
editable install's finder would pre-import ``re`` and ``pathlib``) and lists the modules
the call added. Controls: the parser's path (``hook --help``, an abbreviated option) is
seen importing ``argparse``, and the table is checked against the modules themselves.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from claude_state.cli.main import COMMANDS, LISTING, _hook_call, build_parser

REPO = str(Path(__file__).resolve().parents[1])
SITE = sysconfig.get_paths()["purelib"]
REAL = Path(__file__).parent / "fixtures" / "claude-code-2.1.332" / "session.jsonl"
SID = "7fd24885-14ec-415f-bb62-f5d63ed142c5"

PROBE = """
import os, sys
sys.path[:0] = {paths!r}
before = set(sys.modules)


def report(code):
    new = sorted(set(sys.modules) - before)
    sys.stdout.flush()
    sys.stderr.write("\\n@@" + repr((code, new)))
    sys.stderr.flush()


real_exit = os._exit


def _exit(code):  # a hot hook event ends the process here (hot.finish)
    report(code)
    real_exit(code)


os._exit = _exit
from claude_state.cli.main import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
report(code)
"""

#: What a hook call must never import (the parser, the cold path, other commands).
HEAVY = frozenset(
    {
        "argparse",
        "json",
        "orjson",
        "re",
        "pluggy",
        "typing",
        "dataclasses",
        "functools",
        "claude_state.cli.common",
        "claude_state.adapters.claude_code.events",
    }
)


def _tool_event() -> bytes:
    return next(
        ln + b"\n"
        for ln in REAL.read_bytes().splitlines()
        if b'"hook_event_name":"PostToolUse"' in ln
    )


def _run(argv: list[str], tmp: Path, data: bytes = b"") -> tuple[int, list[str], str, str]:
    code = PROBE.format(paths=[REPO, SITE], argv=argv)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "CLAUDE_STATE_STRICT": "1"}
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        input=data,
        capture_output=True,
        timeout=60,
        env=env,
        cwd=tmp,
    )
    err = r.stderr.decode()
    head, _, tail = err.rpartition("\n@@")
    rc, new = ast.literal_eval(tail)
    return rc, new, r.stdout.decode(), head


def _cmd_modules(new: list[str]) -> set[str]:
    return {m for m in new if m.startswith("claude_state.cli.cmd_")}


def _journaled(state: Path) -> int:
    wal = state / "sessions" / f"{SID}.wal"
    if not wal.exists():
        return 0
    from claude_state.storage import journal
    from claude_state.storage.layout import StateDir

    return len(journal.read(StateDir(str(state)), SID))


@pytest.mark.parametrize(
    "argv",
    [
        ["--state-dir", "{state}", "hook"],
        ["--state-dir={state}", "--json", "hook", "PostToolUse", "--json"],
        ["--project", "{project}", "hook"],
    ],
    ids=["plain", "json-and-event", "project"],
)
def test_hook_call_builds_no_parser(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / ".claude").mkdir()
    state = tmp_path / "s" if "{state}" in " ".join(argv) else tmp_path / ".claude" / "state"
    argv = [a.format(state=tmp_path / "s", project=tmp_path) for a in argv]
    rc, new, out, err = _run(argv, tmp_path, _tool_event())
    assert (rc, out, err) == (0, "", "")
    assert _cmd_modules(new) == {"claude_state.cli.cmd_hook"}
    assert HEAVY & set(new) == set(), sorted(HEAVY & set(new))
    assert _journaled(state) == 1


def test_control_the_parser_path_is_seen(tmp_path: Path) -> None:
    """An abbreviated global option is left to argparse: same result, parser imported."""
    rc, new, out, err = _run(["--state", str(tmp_path / "s"), "hook"], tmp_path, _tool_event())
    assert (rc, out, err) == (0, "", "")
    assert "argparse" in new and "claude_state.cli.common" in new
    assert _journaled(tmp_path / "s") == 1
    rc, new, out, _ = _run(["hook", "--help"], tmp_path)
    assert rc == 0 and out.startswith("usage: claude-state hook") and "argparse" in new


def test_help_lists_every_command_without_importing_them(tmp_path: Path) -> None:
    rc, new, out, _ = _run(["--help"], tmp_path)
    assert rc == 0
    assert _cmd_modules(new) == set()
    for name in LISTING:
        assert f"    {name} " in out, name


@pytest.mark.parametrize(
    "argv, module", [(["--json", "status"], "status"), (["gc", "--help"], "gc")]
)
def test_a_command_imports_its_module_only(tmp_path: Path, argv: list[str], module: str) -> None:
    rc, new, out, err = _run(["--state-dir", str(tmp_path / "s"), *argv], tmp_path)
    assert rc == 0, err
    assert _cmd_modules(new) == {f"claude_state.cli.cmd_{module}"}
    if "--json" in argv:
        assert "sessions" in json.loads(out)


def test_the_listing_is_what_the_modules_register() -> None:
    """The static table and the real parsers agree (names, modules, help lines)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    real = {a.dest: a.help for a in sub._choices_actions}
    assert {name: text for name, (_, text) in LISTING.items()} == real
    assert {module for module, _ in LISTING.values()} == set(COMMANDS)
    for name, (module, _) in LISTING.items():
        lazy = build_parser(needed=[name])
        lsub = next(a for a in lazy._actions if a.__class__.__name__ == "_SubParsersAction")
        assert list(lsub.choices) == list(sub.choices)  # same commands, same order
        assert lsub.choices[name].format_help() == sub.choices[name].format_help(), module


@pytest.mark.parametrize(
    "argv, want",
    [
        (["hook"], (None, None, None)),
        (["hook", "PreToolUse"], (None, None, "PreToolUse")),
        (["--json", "hook", "--json"], (None, None, None)),
        (["--state-dir", "/s", "--project", "/p", "hook"], ("/s", "/p", None)),
        (["--state-dir=/a", "--state-dir=/b", "hook"], ("/b", None, None)),
        (["--debug", "hook", "Stop"], (None, None, "Stop")),
        (["hook", "--help"], None),
        (["hook", "-h"], None),
        (["hook", "A", "B"], None),
        (["--state", "/s", "hook"], None),
        (["--state-dir", "hook"], None),
        (["--state-dir", "-x", "hook"], None),
        (["--version", "hook"], None),
        (["status"], None),
        ([], None),
        (["workflow", "hook"], None),
    ],
)
def test_which_calls_skip_the_parser(argv: list[str], want: object) -> None:
    assert _hook_call(argv) == want
