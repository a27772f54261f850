"""``claude-state install`` / ``uninstall``: add or remove our hooks in Claude Code settings.

Both commands live in one module because they share their options, their project-dir
resolution and their output; :mod:`claude_state.cli.main` imports this module for the
name ``install`` and :func:`register` adds both parsers. The work itself is in
:mod:`claude_state.adapters.claude_code.install`, imported inside :func:`run` so
``--help`` stays cheap.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claude_state.adapters.claude_code.install import InstallResult
    from claude_state.cli.common import Context

_SCOPES = ("project", "local", "user")


def register(subparsers: Any) -> None:
    """Add the ``install`` and ``uninstall`` parsers."""
    for name, help_text in (
        ("install", "merge claude-state's hook entries into Claude Code settings"),
        ("uninstall", "remove claude-state's hook entries (and only those) from settings"),
    ):
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--scope",
            choices=_SCOPES,
            default="project",
            help=(
                "project: .claude/settings.json (default); local: .claude/settings.local.json; "
                "user: ~/.claude/settings.json"
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the resulting settings and write nothing",
        )
        parser.set_defaults(func=run, install_action=name)


def _project_dir(explicit: str | None) -> Path:
    """``--project``, else ``$CLAUDE_PROJECT_DIR``, else the nearest ancestor of the cwd
    holding ``.claude/`` or ``.git``, else the cwd.

    ``$HOME`` does not count as a project merely because it holds ``~/.claude/``: that
    folder is Claude Code's *user* configuration, and treating home as the project would
    make ``--scope project`` silently write the user settings file.
    """
    if explicit:
        return Path(os.path.abspath(explicit))
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env:
        return Path(os.path.abspath(env))
    cwd = Path(os.getcwd())
    home = os.environ.get("HOME")
    home_path = Path(os.path.abspath(home)) if home else None
    for candidate in (cwd, *cwd.parents):
        if (candidate / ".git").exists():
            return candidate
        if (candidate / ".claude").is_dir() and candidate != home_path:
            return candidate
    return cwd


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Install or uninstall, then report the path, what changed and the events."""
    from claude_state.adapters.claude_code import install as lib

    action: str = args.install_action
    scope: str = args.scope
    dry_run: bool = bool(args.dry_run)
    project = _project_dir(getattr(args, "project", None)) if scope != "user" else None

    if action == "install":
        result = lib.install(scope, project, dry_run=dry_run)
    else:
        result = lib.uninstall(scope, project, dry_run=dry_run)

    data: dict[str, Any] = {
        "path": str(result.path),
        "scope": result.scope,
        "changed": result.changed,
        "dry_run": dry_run,
        "events": list(result.events),
        "requested_scope": scope,
    }
    if action == "install":
        data["reason"] = result.reason
        data["command"] = result.command
    data["removed_from"] = None if result.removed_from is None else str(result.removed_from)
    if dry_run:
        data["settings"] = result.settings
    ctx.emit(data, _human(action, result, result.scope, dry_run))
    return 0


def _human(action: str, result: InstallResult, scope: str, dry_run: bool) -> str:
    events = ", ".join(result.events)
    where = f"{result.path} ({scope} scope)"
    why = ""
    if action == "install":
        why = f"\nWhy this file and command: {result.reason}."
        if result.removed_from is not None:
            verb = "Would remove" if dry_run else "Removed"
            why += (
                f"\n{verb} the machine-specific claude-state hooks from {result.removed_from}: "
                "with both files read, every event would be recorded twice."
            )
    if action == "install":
        if not result.changed:
            text = f"claude-state hooks are already installed in {where}; nothing changed."
        elif dry_run:
            text = f"Would install claude-state hooks in {where} for: {events}."
        else:
            text = f"Installed claude-state hooks in {where} for: {events}."
    else:
        if not result.changed:
            text = f"No claude-state hooks in {where}; nothing changed."
        elif dry_run:
            text = f"Would remove claude-state hooks from {where} for: {events}."
        else:
            text = f"Removed claude-state hooks from {where} for: {events}."
    text += why
    if action != "install" and result.removed_from is not None:
        verb = "Would also remove" if dry_run else "Also removed"
        text += f"\n{verb} claude-state hooks from {result.removed_from}."
    if dry_run:
        import orjson

        rendered = orjson.dumps(result.settings, option=orjson.OPT_INDENT_2).decode()
        text += f"\nNothing was written. Resulting settings:\n{rendered}"
    return text
