"""``claude-state gc [--keep N] [--older-than DURATION] [--dry-run]``.

Removes old checkpoints (by retention), ended sessions older than the duration, and
unreferenced blobs older than an hour; never anything a live workflow, a kept
checkpoint or a live session needs (``claude_state.domain.gc``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claude_state.cli.common import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gc",
        help="remove old checkpoints, ended sessions and unreferenced blobs",
        description="Garbage-collect the state directory. Checkpoints go only by the "
        "retention flags (a checkpoint a kept one builds on is always kept); ended "
        "sessions only with --older-than; unreferenced blobs older than one hour always.",
    )
    p.add_argument(
        "--keep", type=int, metavar="N", help="keep the newest N checkpoints of each workflow"
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="remove checkpoints and ended sessions older than this (30s, 15m, 12h, 7d, 2w)",
    )
    p.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.gc import collect, parse_duration
    from claude_state.errors import InvalidInputError

    if args.keep is not None and args.keep < 0:
        raise InvalidInputError("--keep must be >= 0")
    older = parse_duration(args.older_than) if args.older_than is not None else None
    sd = ctx.state_if_exists()
    if not sd.exists():
        report: dict[str, Any] = {
            "checkpoints_removed": [],
            "sessions_removed": [],
            "blobs_removed": 0,
            "bytes_freed": 0,
            "dry_run": bool(args.dry_run),
            "warnings": [],
        }
        ctx.emit(report, f"no state at {sd.root}: nothing to collect")
        return 0
    bar = ctx.progress(_estimate(sd), "collecting")
    report = collect(
        ctx.state, keep=args.keep, older_than=older, dry_run=args.dry_run, progress=bar.advance
    )
    bar.close()
    verb = "would remove" if args.dry_run else "removed"
    lines = [
        f"{verb} {len(report['checkpoints_removed'])} checkpoint(s), "
        f"{len(report['sessions_removed'])} session(s), {report['blobs_removed']} blob(s): "
        f"{report['bytes_freed']} bytes",
    ]
    lines += [f"warning: {w}" for w in report["warnings"]]
    ctx.emit(report, "\n".join(lines))
    return 0


def _estimate(sd: Any) -> int:
    """Roughly how many items gc will visit (for the progress line only)."""
    import os

    n = 0
    for top in ("checkpoints", "sessions", "workflows", "blobs"):
        for _root, _dirs, files in os.walk(os.path.join(sd.root, top)):
            n += len(files)
    return n
