"""``claude-state status``: sessions by status, workflows with progress, what to recover."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="overview: sessions by status, workflows, crashed sessions",
        description="Count sessions by status (active, crashed, ended, recovered), list "
        "workflows with their progress, and show what each crashed session left in flight.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain import recovery
    from claude_state.domain.sessions import SessionStore
    from claude_state.errors import IntegrityError, NotFoundError

    sd = ctx.state_if_exists()
    counts = {"active": 0, "crashed": 0, "ended": 0, "recovered": 0}
    workflows: list[dict[str, Any]] = []
    crashed: list[recovery.RecoveryPlan] = []
    damaged: list[dict[str, Any]] = []
    if sd.exists():
        from claude_state.domain.damage import classify, quarantined_lease

        store = SessionStore(sd)
        for sid in store.ids():
            try:
                st = store.status(sid)
            except NotFoundError:
                continue
            except IntegrityError:
                # Never dropped: counted by what still reads (possibly crashed), named.
                harm = classify(sd, sid)
                if harm is None:  # repaired meanwhile
                    continue
                st = harm.status
                damaged.append(harm.to_dict())
            else:
                if st == "active" and quarantined_lease(sd, sid):  # its lease was damaged
                    harm = classify(sd, sid)
                    if harm is not None:
                        st = harm.status
                        damaged.append(harm.to_dict())
            counts[st] += 1
            if st == "crashed":
                crashed.append(recovery.plan(sd, sid))
        from claude_state.domain.store import WorkflowStore

        for wf in WorkflowStore(sd).list():
            workflows.append(
                {
                    "id": wf.id,
                    "name": wf.name,
                    "status": wf.status,
                    "progress": wf.progress,
                    "current_step": wf.current_step,
                }
            )
    data = {
        "sessions": counts,
        "workflows": workflows,
        "crashed": [p.to_dict() for p in crashed],
        "damaged": damaged,
        "state_dir": sd.root,
    }
    lines = [f"state: {sd.root}", "sessions: " + ", ".join(f"{n} {k}" for k, n in counts.items())]
    if workflows:
        lines.append("workflows:")
        for w in workflows:
            cur = f"  (current step: {w['current_step']})" if w["current_step"] else ""
            lines.append(f"  {w['id']:<24} {w['status']:<10} {w['progress']:>5}%{cur}")
    else:
        lines.append("workflows: none")
    if damaged:
        lines.append("")
        lines.append(f"{len(damaged)} session(s) with damaged files (claude-state verify):")
        for d in damaged:
            for p in d["problems"]:
                lines.append(f"  {d['session_id']} ({d['status']}): {p['kind']} {p['path']}")
    if crashed:
        from claude_state.cli.cmd_recover import render

        lines.append("")
        lines.append(f"{len(crashed)} crashed session(s) left work in flight:")
        lines.append(render([p.to_dict() for p in crashed], dry_run=False))
        lines.append("")
        lines.append("to recover: claude-state recover   (preview: claude-state recover --dry-run)")
    ctx.emit(data, "\n".join(lines))
    return 0
