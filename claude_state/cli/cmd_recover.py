"""``claude-state recover [SID...] [--dry-run] [--kill-orphans]``: plan and apply crash
recovery, and optionally end the processes the crashed agent left running."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "recover",
        help="recover crashed sessions (all, or the ones named)",
        description="For each crashed session (a stale lease on a session that never "
        "ended): show what it left and make it ready to resume: interrupted steps go back "
        "to pending to be retried, the lease is released with a new fencing epoch, and a "
        "recovery checkpoint is recorded. The processes the dead agent left running are "
        "named; --kill-orphans ends them. Safe to run twice.",
    )
    p.add_argument("sids", nargs="*", metavar="SID", help="sessions (default: every crashed one)")
    p.add_argument("--dry-run", action="store_true", help="show the plans, change nothing")
    p.add_argument(
        "--kill-orphans",
        action="store_true",
        help="also end the processes the dead agent left running (named in the plan by "
        "evidence that they belong to its session, never by name): SIGTERM, then SIGKILL",
    )
    p.set_defaults(func=run)


def render(plans: list[dict[str, Any]], dry_run: bool) -> str:
    """Human text for recovery plans (also used by ``status``)."""
    if not plans:
        return "no crashed sessions: nothing to recover"
    lines: list[str] = []
    for p in plans:
        state = (
            "would apply"
            if dry_run and not p["applied"]
            else ("applied" if p["applied"] else "not applied")
        )
        lines.append(
            f"session {p['session_id']}  [{p['status']}]  strategy: {p['strategy']} ({state})"
        )
        lines.append(f"  data loss: {p['estimated_data_loss']}")
        la = p.get("last_activity") or {}
        if la.get("at"):
            lines.append(f"  last activity: {la['at']}")
        if la.get("last_prompt"):
            lines.append(f"  last prompt: {la['last_prompt'][:200]}")
        for c in (la.get("last_tool_calls") or [])[-5:]:
            lines.append(
                f"    {c.get('status', '?'):<11} {c.get('tool_name')}  {c.get('summary') or ''}"
            )
        for w in p["recoverable_workflows"]:
            step = w.get("step_in_flight")
            lines.append(
                f"  workflow {w['id']} ({w.get('name') or '-'}): {w['status']}, "
                f"{w.get('progress')}% done"
                + (f", step in flight: {step}" if step else "")
                + (" -> ready to retry" if step and p["applied"] else "")
            )
        orphans = p.get("orphans") or []
        if orphans:
            lines.append("  processes it left running:")
            for o in orphans:
                age = o.get("age_seconds")
                lines.append(f"    pid {o['pid']}  {_age(age)}  {o.get('command') or '?'}")
            if not p.get("killed_orphans"):
                lines.append(
                    f"  (`claude-state recover {p['session_id']} --kill-orphans` ends them)"
                )
        elif p.get("orphans_note") and p.get("status") in ("crashed", "recovered"):
            lines.append(f"  processes left running: {p['orphans_note']}")
        for c in p.get("changes") or []:
            lines.append(f"  - {c}")
        if p.get("error"):
            lines.append(f"  NOT RECOVERED: {p['error']['message']}")
        lines.append("")
    if dry_run:
        lines.append("dry run: nothing changed; run without --dry-run to apply")
    return "\n".join(lines).rstrip()


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "age ?"
    s = int(seconds)
    if s < 120:
        return f"running {s}s"
    if s < 7200:
        return f"running {s // 60}m"
    return f"running {s // 3600}h"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain import recovery
    from claude_state.domain.sessions import SessionStore
    from claude_state.errors import ClaudeStateError, NotFoundError, exit_code_for
    from claude_state.ids import validate_id

    sids = [validate_id(s, "session id") for s in args.sids]
    sd = ctx.state_if_exists()
    if sids:
        store = SessionStore(sd)
        for s in sids:
            if not sd.exists() or not store.exists(s):
                raise NotFoundError("session", s)
    else:
        sids = recovery.find_crashed(sd) if sd.exists() else []
    plans = []
    failed: list[ClaudeStateError] = []
    for s in sids:
        plan = None
        try:
            plan = recovery.plan(sd, s)
            # A named session that is active is refused (exit 4) by apply: its owner lives.
            if not args.dry_run and plan.status in ("crashed", "active"):
                plan = recovery.apply(sd, plan)
            if args.kill_orphans and not args.dry_run:
                plan = recovery.kill_orphans(plan)
        except ClaudeStateError as exc:
            if len(sids) == 1:
                raise  # the one session asked for: its error is the answer
            # One session that cannot be recovered (a journal damaged beyond its tail)
            # must not keep the others from being recovered: named, and exit non-zero.
            failed.append(exc)
            entry: dict[str, Any] = (
                plan.to_dict()
                if plan is not None
                else {
                    "session_id": s,
                    "strategy": "none",
                    "estimated_data_loss": "unknown: the session's files do not read",
                    "recoverable_workflows": [],
                    "applied": False,
                    "status": "damaged",
                }
            )
            entry["error"] = {"kind": type(exc).__name__, "message": str(exc)}
            plans.append(entry)
            continue
        plans.append(plan.to_dict())
    ctx.emit({"plans": plans}, render(plans, args.dry_run))
    return max((exit_code_for(e) for e in failed), default=0)
