"""``claude-state verify [--repair]``: check every file; exit 1 while problems remain."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check every state file for damage (exit 1 if any)",
        description="Verify checksums, WAL integrity, replay and checkpoint chains of every "
        "file under the state directory. With --repair: rebuild damaged snapshots from "
        "their previous generation (lossless), cut torn WAL tails, and move files that "
        "cannot be rebuilt to quarantine/.",
    )
    p.add_argument("--repair", action="store_true", help="fix what can be fixed safely")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.verify import verify

    sd = ctx.state_if_exists(check=False)  # foreign folders are named, not refused
    if not sd.exists():
        ctx.emit(
            {"ok": True, "checked": 0, "problems": [], "repaired": []},
            f"no state at {sd.root}: nothing to verify",
        )
        return 0
    bar = None

    def total(n: int) -> None:
        nonlocal bar
        bar = ctx.progress(n, "verifying")

    def advance(n: int) -> None:
        if bar:
            bar.advance(n)

    report = verify(sd, repair=args.repair, progress=advance, total=total)
    if bar:
        bar.close()
    lines = [f"checked {report.checked} files in {sd.root}"]
    for r in report.repaired:
        lines.append(f"  repaired  {r['path']}: {r['action']}")
    for p in report.problems:
        lines.append(f"  DAMAGED   {p['path']} [{p['kind']}]: {p['detail']}")
    lines.append(
        "ok"
        if report.ok
        else f"{len(report.problems)} problem(s) found"
        + ("" if args.repair else "; try: claude-state verify --repair")
    )
    ctx.emit(report.to_dict(), "\n".join(lines))
    return 0 if report.ok else 1
