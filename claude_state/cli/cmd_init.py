"""``claude-state init``: create the state layout (idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="create the state directory layout (idempotent)",
        description="Create .claude/state/ with its folders (0700). "
        "Safe to run again; orphaned temp files are swept.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    sd = ctx.state  # resolving creates the layout
    ctx.emit({"state_dir": sd.root}, f"initialised {sd.root}")
    return 0
