"""``claude-state hook [EVENT]``: the Claude Code hook, run through the CLI.

The same handler as the hot entry point that ``install`` writes into the settings
(``python -I -c "from claude_state.adapters.claude_code.hot import main; main()"``).
A plain ``claude-state hook`` call is answered by :func:`run_hook` before any argument
parser is built or other command module imported (``claude_state.cli.main``), so this
module imports nothing at run time beyond ``os`` and ``sys``; :func:`register` and
:func:`run` are the parser's way to the same function (``--help``, unusual spellings).

Global ``--state-dir``/``--project`` are honoured by passing them to the handler as
``CLAUDE_STATE_DIR``/``CLAUDE_PROJECT_DIR``. ``--json`` changes nothing: the output is
already the one JSON answer Claude Code reads (or nothing).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the hook call must not import these
    import argparse
    from typing import Any

    from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "hook",
        help="handle one Claude Code hook event from stdin (always exits 0)",
        description=(
            "Read one Claude Code hook input (a JSON object) from stdin, record it durably "
            "and answer on stdout when the event calls for it. EVENT defaults to the "
            "input's hook_event_name. Exit 0 always (internal errors are logged under the "
            "state dir's logs/; CLAUDE_STATE_STRICT=1 makes them exit 1), except where a "
            "policy you enabled blocks."
        ),
    )
    p.add_argument("event", nargs="?", metavar="EVENT", help="override hook_event_name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    return run_hook(args.state_dir, args.project, args.event)


def run_hook(
    state_dir: str | None, project: str | None, event: str | None, *, exit_now: bool = False
) -> int:
    """Handle one hook input from stdin; the exit code (see :func:`hot.handle`).

    With *exit_now* (the CLI's fast dispatch of a plain ``claude-state hook``) the process
    ends here, as the installed command's does (:func:`hot.finish`: a hot event skips
    the interpreter's finalization).
    """
    from claude_state.adapters.claude_code.hot import finish, handle_event

    env = dict(os.environ)
    if state_dir:
        env["CLAUDE_STATE_DIR"] = os.path.abspath(state_dir)
    elif project:
        env.pop("CLAUDE_STATE_DIR", None)
        env["CLAUDE_PROJECT_DIR"] = os.path.abspath(project)
    try:
        raw = sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):
        raw = b""
    code, out, hot = handle_event(raw, event or None, env)
    if exit_now:
        finish(code, out, hot)
    if out:
        try:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            pass  # the agent stopped listening; the event is recorded already
    return code
