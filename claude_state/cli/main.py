"""The ``claude-state`` command line: global options, dispatch, error-to-exit-code mapping.

Each command lives in its own module ``claude_state.cli.cmd_<name>`` exposing
``register(subparsers)``; command modules import their heavy dependencies inside their
``run`` functions so ``--help`` and the hook stay cheap. The library raises typed errors
(:mod:`claude_state.errors`); only this module turns them into messages and exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from claude_state.errors import ClaudeStateError, exit_code_for

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


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in the contract's format: one line, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"claude-state: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(2)


def _version() -> str:
    import claude_state

    return str(claude_state.__version__)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"claude_state.cli.cmd_{name}")
        module.register(sub)
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
    parser = build_parser()
    args = parser.parse_args(argv)
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
