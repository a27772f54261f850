"""The ``claude-state`` command line: global options, dispatch, error-to-exit-code mapping.

Each command lives in its own module ``claude_state.cli.cmd_<name>`` exposing
``register(subparsers)`` and the functions it runs. A command module is imported only
when its command runs (or is named on the command line): ``--help`` lists every command
from :data:`LISTING`, a static table, and ``claude-state status`` imports the status
module and no other. ``claude-state hook`` is answered before any parser is built
(:func:`_hook_call`): it is the Claude Code hook, run on every tool call. The library
raises typed errors (:mod:`claude_state.errors`); only this module turns them into
messages and exit codes.

To add a command: write ``cmd_<name>.py`` (``register`` and ``run``), add its module name
to :data:`COMMANDS` and its help line to :data:`LISTING` (``tests/test_cli_lazy.py``
checks that the table and the modules agree).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the hook call must not pay for these imports
    import argparse
    from collections.abc import Sequence

#: Command modules, in the order ``--help`` lists them.
COMMANDS = (
    "init",
    "status",
    "hook",
    "install",
    "workflow",
    "checkpoint",
    "sessions",
    "recover",
    "verify",
    "gc",
    "demo",
)

#: Every command ``--help`` lists: name -> (its module, the help line its module
#: registers). Lets ``--help`` list all commands without importing their modules.
LISTING: dict[str, tuple[str, str]] = {
    "init": ("init", "create the state directory layout (idempotent)"),
    "status": ("status", "overview: sessions by status, workflows, crashed sessions"),
    "hook": ("hook", "handle one Claude Code hook event from stdin (always exits 0)"),
    "install": ("install", "merge claude-state's hook entries into Claude Code settings"),
    "uninstall": (
        "install",
        "remove claude-state's hook entries (and only those) from settings",
    ),
    "workflow": ("workflow", "create, inspect and drive durable workflows"),
    "checkpoint": ("checkpoint", "create, list, show, restore and verify checkpoints"),
    "sessions": (
        "sessions",
        "list and show recorded agent sessions and their events; export and import them",
    ),
    "recover": ("recover", "recover crashed sessions (all, or the ones named)"),
    "verify": ("verify", "check every state file for damage (exit 1 if any)"),
    "gc": ("gc", "remove old checkpoints, ended sessions and unreferenced blobs"),
    "demo": ("demo", "run the crash-and-recover demonstration in a temporary project"),
}


#: Arguments that hold ids, by argparse dest, and what they name. They are validated
#: here, before any command runs, so no command can touch the disk with a bad id.
ID_ARGS = {
    "id": "workflow id",
    "step": "step id",
    "checkpoint": "checkpoint id",
    "to": "checkpoint id",
    "sid": "session id",
    "sids": "session id",
}

_GLOBAL_VALUES = ("--state-dir", "--project")


def _hook_call(argv: Sequence[str]) -> tuple[str | None, str | None, str | None] | None:
    """``(state_dir, project, event)`` when *argv* is a plain ``hook`` call, else None.

    Accepted: the global ``--state-dir DIR``/``--project DIR`` (or ``=DIR``), ``--json``
    and ``--debug`` before ``hook``, an optional ``EVENT`` and ``--json`` after it: the
    forms argparse would parse to the same call. Anything else (``--help``, an unknown
    option, an abbreviation) goes through the parser, which handles it as before.
    """
    state_dir = project = None
    i, n = 0, len(argv)
    while i < n:
        a = argv[i]
        if a in ("--json", "--debug"):
            i += 1
            continue
        name, eq, value = a.partition("=")
        if name not in _GLOBAL_VALUES:
            break
        if not eq:
            if i + 1 >= n:
                return None
            value = argv[i + 1]
            i += 1
        if value.startswith("-"):
            return None  # argparse would refuse it: let it say so
        if name == "--state-dir":
            state_dir = value
        else:
            project = value
        i += 1
    if i >= n or argv[i] != "hook":
        return None
    rest = [a for a in argv[i + 1 :] if a != "--json"]
    if len(rest) > 1 or (rest and rest[0].startswith("-")):
        return None
    return state_dir, project, (rest[0] if rest else None)


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class _Parser(argparse.ArgumentParser):
        """argparse that reports usage errors in the contract's format: one line, exit 2."""

        def error(self, message: str) -> None:  # type: ignore[override]
            sys.stderr.write(f"claude-state: error: {message} (see: {self.prog} --help)\n")
            raise SystemExit(2)

    return _Parser


def _version() -> str:
    from claude_state.version import package_version

    return package_version()


def build_parser(needed: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. Every command module in :data:`COMMANDS` registers its
    commands; with *needed* (command names), only the modules of those do, and the
    others' commands are listed from :data:`LISTING` without importing them."""
    import importlib

    parser_class = _parser_class()
    parser = parser_class(
        prog="claude-state",
        description=(
            "Crash-proof state for long AI-agent work: records Claude Code sessions through "
            "hooks, keeps durable workflows, and recovers what a crash left in flight."
        ),
    )
    parser.add_argument("--state-dir", metavar="DIR", help="state directory (overrides all)")
    parser.add_argument(
        "--project", metavar="DIR", help="project directory (state in DIR/.claude/state)"
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    load = None if needed is None else {LISTING[c][0] for c in needed if c in LISTING}
    for module in COMMANDS:
        listed = [(name, text) for name, (mod, text) in LISTING.items() if mod == module]
        if load is None or module in load or not listed:
            importlib.import_module(f"claude_state.cli.cmd_{module}").register(sub)
        else:
            for name, text in listed:
                sub.add_parser(name, help=text)  # listed only: this call does not run it
    _accept_json_anywhere(parser)
    return parser


def _validate_ids(args: argparse.Namespace) -> None:
    from claude_state.ids import validate_id

    for dest, what in ID_ARGS.items():
        value = getattr(args, dest, None)
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                validate_id(v, what)


def _accept_json_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--json`` follow the command too (``claude-state status --json``).

    The contract puts global options before the command; people also type them after
    it. SUPPRESS keeps a subcommand's absent flag from overriding the global one.
    """
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if not child.description and helps.get(name):
                    # `claude-state workflow create --help` explains itself
                    child.description = str(helps[name])[:1].upper() + str(helps[name])[1:] + "."
                if not any("--json" in a.option_strings for a in child._actions):
                    child.add_argument(
                        "--json",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help="print exactly one JSON document",
                    )
                _accept_json_anywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    hook = _hook_call(args_list) if "hook" in COMMANDS else None
    if hook is not None:
        from claude_state.cli.cmd_hook import run_hook

        return run_hook(*hook, exit_now=True)
    import os

    parser = build_parser(needed=[a for a in args_list if a in LISTING])
    args = parser.parse_args(args_list)
    debug = args.debug or os.environ.get("CLAUDE_STATE_DEBUG") == "1"
    if not getattr(args, "func", None) and not args.version:
        if args.json or argv is not None and len(argv) > 0:
            sys.stderr.write(
                "claude-state: error: a command is required (see: claude-state --help)\n"
            )
        else:
            parser.print_help()
        return 2
    from claude_state.cli.common import Context
    from claude_state.errors import ClaudeStateError, exit_code_for

    try:
        if args.version:
            print(f"claude-state {_version()}")
            return 0
        _validate_ids(args)
        code = args.func(args, Context(args))
        return int(code or 0)
    except ClaudeStateError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"claude-state: error: {exc}\n")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        sys.stderr.write("claude-state: error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the file system said no: say what and where, plainly
        if debug:
            import traceback

            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"claude-state: error: {where}{exc.strerror or exc}\n")
        return 1
    except Exception as exc:  # a bug: say so plainly, keep the contract's one line
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(
            f"claude-state: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback)\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
