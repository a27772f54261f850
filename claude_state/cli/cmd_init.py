"""``claude-state init``: create the state layout (idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="create the state directory layout (idempotent)",
        description="Create .claude/state/ with its folders (0700) and a .gitignore "
        "holding '*' (prompts and tool outputs stay out of git). "
        "Safe to run again; orphaned temp files are swept.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from claude_state.storage.gitignore import GITIGNORE, write_gitignore

    sd = ctx.state  # resolving creates the layout (and its .gitignore)
    write_gitignore(sd.root)  # a layout made by an older version has none yet
    ignore = os.path.join(sd.root, GITIGNORE)
    ctx.emit(
        {"state_dir": sd.root, "gitignore": ignore},
        f"initialised {sd.root} ({GITIGNORE} keeps it out of git: it holds prompts and "
        "tool outputs)",
    )
    return 0
