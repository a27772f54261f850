"""Keep ``docs/cli.md`` true: every command has help and is documented, nothing stale.

The real argparse tree (:func:`claude_state.cli.main.build_parser`) is walked and checked
against the page: every command and action has help text, a heading of the exact form
``## `claude-state CMD``` / ``### `claude-state CMD ACTION```, a synopsis line, its exit
codes and every one of its flags in its own section; every such heading names a real
command; every environment variable the package reads is listed. Each check is a
function returning what it found wrong, so a negative control can show that the check
reports a doctored page (one heading removed, one flag removed...) and is not vacuous.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from claude_state.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "cli.md"
PKG = ROOT / "claude_state"


@dataclass(frozen=True)
class Node:
    """One command (``("gc",)``) or action (``("workflow", "show")``) of the CLI."""

    path: tuple[str, ...]
    help: str  # the line in the parent's command listing
    description: str  # the paragraph of its own --help
    options: tuple[str, ...]  # every option string except -h/--help

    @property
    def heading(self) -> str:
        return f"{'#' * (1 + len(self.path))} `claude-state {' '.join(self.path)}`"

    @property
    def name(self) -> str:
        return " ".join(self.path)


def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[Node]:
    """Every command and action below *parser*, parents before their children."""
    nodes: list[Node] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, child in action.choices.items():
            path = (*prefix, name)
            nodes.append(
                Node(
                    path=path,
                    help=helps.get(name, ""),
                    description=child.description or "",
                    options=_options(child),
                )
            )
            nodes.extend(walk(child, path))
    return nodes


def _options(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    return tuple(o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help"))


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture(scope="module")
def nodes(parser: argparse.ArgumentParser) -> list[Node]:
    found = walk(parser)
    assert len(found) > 20, "the walk found too few commands: is build_parser() intact?"
    return found


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


# -- reading the page ---------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6}) +(.+?)\s*$")
_CMD_HEADING = re.compile(r"^#{1,6} `claude-state [^`]+`$")


def headings(doc: str) -> list[tuple[int, int, str]]:
    """``(line index, level, heading line)`` of every heading outside code blocks."""
    out = []
    fenced = False
    for i, line in enumerate(doc.splitlines()):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append((i, len(m.group(1)), line.rstrip()))
    return out


def sections(doc: str) -> dict[str, str]:
    """Heading line -> its text, up to the next heading of the same or a higher level."""
    lines = doc.splitlines()
    hs = headings(doc)
    out: dict[str, str] = {}
    for n, (i, level, line) in enumerate(hs):
        end = next((j for j, lv, _ in hs[n + 1 :] if lv <= level), len(lines))
        out[line] = "\n".join(lines[i + 1 : end])
    return out


def mentions(text: str, option: str) -> bool:
    """*option* appears as a whole token (``-m`` is not found inside ``--metrics``)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


# -- the checks (each returns what is wrong) ----------------------------------------------


def missing_help(nodes: list[Node]) -> list[str]:
    """Commands or actions with no help line in their parent's listing and no description."""
    return [n.name for n in nodes if not (n.help.strip() or n.description.strip())]


def missing_headings(doc: str, nodes: list[Node]) -> list[str]:
    present = {line for _, _, line in headings(doc)}
    return [n.heading for n in nodes if n.heading not in present]


def missing_options(doc: str, nodes: list[Node]) -> list[tuple[str, str]]:
    """``(command, option)`` pairs whose option is not named in the command's section."""
    secs = sections(doc)
    out = []
    for n in nodes:
        body = secs.get(n.heading)
        if body is None:
            continue  # reported by missing_headings
        out += [(n.name, o) for o in n.options if not mentions(body, o)]
    return out


def incomplete_sections(doc: str, nodes: list[Node]) -> list[tuple[str, str]]:
    """Sections without a synopsis line (``claude-state CMD ...``) or their exit codes."""
    secs = sections(doc)
    out = []
    for n in nodes:
        body = secs.get(n.heading)
        if body is None:
            continue
        synopsis = re.compile(rf"^claude-state {re.escape(n.name)}(?: |$)", re.M)
        if not synopsis.search(body):
            out.append((n.name, "synopsis"))
        is_group = any(m.path[:-1] == n.path for m in nodes)
        if not is_group and "Exit codes" not in body:
            out.append((n.name, "exit codes"))
    return out


def stale_headings(doc: str, nodes: list[Node]) -> list[str]:
    """``claude-state ...`` headings that name no real command or action (or the wrong
    level: an action documented as a command)."""
    expected = {n.heading for n in nodes}
    return [
        line for _, _, line in headings(doc) if _CMD_HEADING.match(line) and line not in expected
    ]


def missing_global_options(doc: str, parser: argparse.ArgumentParser) -> list[str]:
    body = sections(doc).get("## Global options", "")
    return [o for o in _options(parser) if not mentions(body, o)]


# Reads of the environment: os.environ.get("X"), os.environ["X"], os.getenv("X"), and the
# injected mappings the package passes around (env.get("X"), env["X"]).
_ENV_READ = re.compile(
    r"""\b(?:environ|env|getenv)\s*(?:\.(?:get|pop|setdefault)\s*\(|\[|\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
# Any quoted CLAUDE_* name: the project's variables, also when read through a loop or a
# helper the regex above does not see.
_CLAUDE_NAME = re.compile(r"""["'](CLAUDE_[A-Z0-9_]+)["']""")


def env_vars_in(source: str) -> set[str]:
    return set(_ENV_READ.findall(source)) | set(_CLAUDE_NAME.findall(source))


def package_env_vars() -> dict[str, str]:
    """Variable -> the first file (relative) that reads it, over every module."""
    found: dict[str, str] = {}
    for path in sorted(PKG.rglob("*.py")):
        for name in env_vars_in(path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def undocumented_env(doc: str, names: dict[str, str]) -> list[str]:
    body = sections(doc).get("## Environment variables", "")
    return sorted(f"{n} (read in {where})" for n, where in names.items() if f"`{n}`" not in body)


# -- the real CLI against the real page ---------------------------------------------------


def test_the_tree_is_the_one_main_dispatches(nodes: list[Node]) -> None:
    from claude_state.cli.main import COMMANDS

    top = {n.path[0] for n in nodes if len(n.path) == 1}
    assert set(COMMANDS) <= top  # install's module also registers uninstall
    assert {"uninstall"} <= top
    assert ("workflow", "rollback") in {n.path for n in nodes}


def test_every_command_and_action_has_help(nodes: list[Node]) -> None:
    assert missing_help(nodes) == []
    # A command's own --help page explains it, not only the parent's listing.
    assert [n.name for n in nodes if len(n.path) == 1 and not n.description.strip()] == []


def test_every_command_and_action_has_its_heading(doc: str, nodes: list[Node]) -> None:
    assert missing_headings(doc, nodes) == []


def test_every_flag_is_documented_in_its_section(doc: str, nodes: list[Node]) -> None:
    assert missing_options(doc, nodes) == []


def test_every_section_has_a_synopsis_and_exit_codes(doc: str, nodes: list[Node]) -> None:
    assert incomplete_sections(doc, nodes) == []


def test_no_stale_command_headings(doc: str, nodes: list[Node]) -> None:
    assert stale_headings(doc, nodes) == []


def test_global_options_are_documented(doc: str, parser: argparse.ArgumentParser) -> None:
    assert set(_options(parser)) >= {"--state-dir", "--project", "--json", "--debug"}
    assert missing_global_options(doc, parser) == []


def test_every_environment_variable_read_is_documented(doc: str) -> None:
    names = package_env_vars()
    # The scan must see the variables we know about, or it proves nothing.
    assert {"CLAUDE_STATE_DIR", "CLAUDE_PROJECT_DIR", "CLAUDE_PID", "HOME"} <= set(names)
    assert undocumented_env(doc, names) == []


def _help_failures(paths: list[tuple[str, ...]]) -> list[str]:
    """Run ``python -m claude_state PATH... --help`` for every path, concurrently; each
    failure (non-zero exit, stderr output, no usage line) as a message."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        (
            path,
            subprocess.Popen(
                [sys.executable, "-m", "claude_state", *path, "--help"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            ),
        )
        for path in paths
    ]
    failures = []
    for path, proc in procs:
        out, err = proc.communicate(timeout=60)
        usage = " ".join(("usage: claude-state", *path))
        if proc.returncode != 0 or err or not out.startswith(usage):
            failures.append(f"{' '.join(path) or '(top)'}: exit {proc.returncode}, {err[-200:]!r}")
    return failures


def test_help_runs_for_every_command_and_action(nodes: list[Node]) -> None:
    assert _help_failures([(), *(n.path for n in nodes)]) == []


# -- negative controls: each check reports a doctored page --------------------------------


def _drop_line(doc: str, line: str) -> str:
    lines = doc.splitlines()
    assert line in lines, line
    return "\n".join(ln for ln in lines if ln != line)


def test_control_missing_heading_is_reported(doc: str, nodes: list[Node]) -> None:
    for heading in ("## `claude-state gc`", "### `claude-state workflow data`"):
        assert missing_headings(_drop_line(doc, heading), nodes) == [heading]


def test_control_missing_flag_is_reported(doc: str, nodes: list[Node]) -> None:
    secs = sections(doc)
    gc = secs["## `claude-state gc`"]
    doctored = doc.replace(gc, gc.replace("--older-than", "--older"))
    assert missing_options(doctored, nodes) == [("gc", "--older-than")]
    # A flag named only in another command's section does not count for this one.
    show = secs["### `claude-state workflow show`"]
    doctored = doc.replace(show, show.replace("--metrics", "metrics"))
    assert missing_options(doctored, nodes) == [("workflow show", "--metrics")]


def test_control_short_flag_is_not_found_inside_a_long_one() -> None:
    assert not mentions("use --metrics or --message", "-m")
    assert mentions("| `-m TEXT`, `--message TEXT` |", "-m")
    assert not mentions("--older-than-ever", "--older-than")


def test_control_incomplete_section_is_reported(doc: str, nodes: list[Node]) -> None:
    body = sections(doc)["## `claude-state verify`"]
    doctored = doc.replace(body, "\nChecks things.\n\n| `--repair` | `--json` |\n")
    assert incomplete_sections(doctored, nodes) == [
        ("verify", "synopsis"),
        ("verify", "exit codes"),
    ]


def test_control_stale_heading_is_reported(doc: str, nodes: list[Node]) -> None:
    doctored = (
        doc
        + "\n## `claude-state frobnicate`\n\ngone.\n"
        + "\n### `claude-state workflow frob`\n\ngone.\n"
        + "\n## `claude-state workflow show`\n\nan action at the level of a command.\n"
    )
    assert stale_headings(doctored, nodes) == [
        "## `claude-state frobnicate`",
        "### `claude-state workflow frob`",
        "## `claude-state workflow show`",
    ]


def test_control_missing_global_option_is_reported(
    doc: str, parser: argparse.ArgumentParser
) -> None:
    body = sections(doc)["## Global options"]
    doctored = doc.replace(body, body.replace("--debug", "debug"))
    assert missing_global_options(doctored, parser) == ["--debug"]


def test_control_help_check_reports_a_command_without_help() -> None:
    p = argparse.ArgumentParser(prog="claude-state")
    sub = p.add_subparsers()
    sub.add_parser("helped", help="does a thing")
    a = sub.add_parser("bare")
    a.add_subparsers().add_parser("inner", description="explained on its own page")
    assert missing_help(walk(p)) == ["bare"]


def test_control_help_run_reports_a_failing_command() -> None:
    assert [f.split(":")[0] for f in _help_failures([("status",), ("nosuch",)])] == ["nosuch"]


def test_control_environment_scan_and_check() -> None:
    source = "\n".join(
        [
            'a = os.environ.get("CLAUDE_STATE_ONE")',
            "b = os.environ['TWO_VAR']",
            'c = os.getenv("THREE")',
            'd = env.get("FOUR", "").strip()',
            'e = env["FIVE"]',
            'for k in ("CLAUDE_SIX", "not_a_var"):',
            "    env.pop(k, None)",
            'f = environ.setdefault("SEVEN", "1")',
            'g = settings.get("NOT_ENV")',
        ]
    )
    assert env_vars_in(source) == {
        "CLAUDE_STATE_ONE",
        "TWO_VAR",
        "THREE",
        "FOUR",
        "FIVE",
        "CLAUDE_SIX",
        "SEVEN",
    }
    doc = "## Environment variables\n\n| `CLAUDE_STATE_ONE` | x |\n\n## Next\n\n`FOUR`\n"
    assert undocumented_env(doc, {"CLAUDE_STATE_ONE": "a.py", "FOUR": "b.py"}) == [
        "FOUR (read in b.py)"
    ]
