"""``claude-state checkpoint ...``: create, list, show, restore and verify checkpoints.

JSON keys fixed by ``docs/cli-contract.md``::

    checkpoint create ID [-m TEXT] [--tag T]... [--type TYPE]
        {"id", "workflow_id", "type", "tags", "created_at"} (+ "description",
        "incremental", "parent")
    checkpoint list [ID]
        [{"id", "workflow_id", "type", "tags", "description", "created_at", "incremental"}]
        (+ "damaged"; a damaged checkpoint is listed last with "problem" and empty fields)
    checkpoint restore CHECKPOINT
        {"workflow_id", "checkpoint_id"} (+ "restored_from", "warnings")

Added here: ``checkpoint show CHECKPOINT`` and ``checkpoint verify [ID]`` (exit 1 when
a problem is found, like ``verify``), and ``checkpoint suggest ID`` (which checkpoint
a recovery should restore).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claude_state.cli.common import Context
    from claude_state.domain.checkpoints import CheckpointStore

_TYPES = ("manual", "automatic", "pre_step", "post_step", "error", "pre_compact", "recovery")


def register(subparsers: Any) -> None:
    """Add ``checkpoint`` and its subcommands."""
    p = subparsers.add_parser(
        "checkpoint",
        help="create, list, show, restore and verify checkpoints",
        description="Checkpoints freeze a workflow; incremental ones store a delta on their "
        "parent and every tenth is full, so a restore reads a bounded chain.",
    )
    sub = p.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)

    c = sub.add_parser("create", help="checkpoint a workflow")
    c.add_argument("id", metavar="ID", help="workflow id")
    c.add_argument("-m", "--message", metavar="TEXT", default="", help="description")
    c.add_argument("--tag", action="append", default=[], metavar="T", help="a tag (repeatable)")
    c.add_argument("--type", choices=_TYPES, default="manual", help="checkpoint type")
    c.set_defaults(func=run, action="create")

    ls = sub.add_parser("list", help="list checkpoints (of one workflow, or all)")
    ls.add_argument("id", metavar="ID", nargs="?", help="workflow id")
    ls.set_defaults(func=run, action="list")

    s = sub.add_parser("show", help="show one checkpoint")
    s.add_argument("checkpoint", metavar="CHECKPOINT")
    s.set_defaults(func=run, action="show")

    r = sub.add_parser("restore", help="restore a workflow from a checkpoint")
    r.add_argument("checkpoint", metavar="CHECKPOINT")
    r.set_defaults(func=run, action="restore")

    v = sub.add_parser("verify", help="verify checkpoint files and chains (exit 1 on damage)")
    v.add_argument("id", metavar="ID", nargs="?", help="workflow id")
    v.set_defaults(func=run, action="verify")

    g = sub.add_parser("suggest", help="the checkpoint to restore, and warnings")
    g.add_argument("id", metavar="ID", help="workflow id")
    g.set_defaults(func=run, action="suggest")


def _store(ctx: Context) -> CheckpointStore:
    from claude_state.domain.checkpoints import CheckpointStore
    from claude_state.domain.fencing import caller_fence
    from claude_state.domain.store import WorkflowStore

    workflows = WorkflowStore(ctx.state)
    workflows.caller = caller_fence(ctx.state)  # a restore by a fenced-off session: exit 4
    return CheckpointStore(ctx.state, workflows=workflows)


def _notify_created(ctx: Context, info: dict[str, Any]) -> None:
    """Fire ``checkpoint_created`` when the plugin package is present; a plugin's
    failure never turns a durable checkpoint into a failed command."""
    try:
        from claude_state.plugins import notify
    except (ImportError, AttributeError):
        return
    try:
        notify("checkpoint_created", state=ctx.state, checkpoint=dict(info))
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        sys.stderr.write(f"claude-state: warning: plugin hook checkpoint_created: {exc}\n")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.ids import validate_id

    cps = _store(ctx)
    action = args.action
    if action == "create":
        validate_id(args.id, "workflow id")
        info = cps.create(args.id, type=args.type, tags=args.tag, description=args.message)
        _notify_created(ctx, info)
        kind = "incremental" if info["incremental"] else "full"
        ctx.emit(info, f"created {kind} checkpoint {info['id']} of workflow {info['workflow_id']}")
        return 0
    if action == "list":
        if args.id is not None:
            validate_id(args.id, "workflow id")
        keys = ("id", "workflow_id", "type", "tags", "description", "created_at", "incremental")
        rows = []
        for c in cps.list(args.id, damaged=True):
            row = {k: c[k] for k in keys}
            row["damaged"] = c["damaged"]  # listed, never hidden (verify says more)
            if c["damaged"]:
                row["problem"] = c["problem"]
            rows.append(row)
        human = (
            "no checkpoints"
            if not rows
            else _table(
                [
                    [
                        r["id"],
                        r["workflow_id"],
                        r["type"] or "-",
                        "DAMAGED" if r["damaged"] else "inc" if r["incremental"] else "full",
                        r["created_at"] or "-",
                        ",".join(r["tags"]),
                        r["problem"][-60:] if r["damaged"] else r["description"][:40],
                    ]
                    for r in rows
                ],
                ["ID", "WORKFLOW", "TYPE", "KIND", "CREATED", "TAGS", "DESCRIPTION"],
            )
        )
        ctx.emit(rows, human)
        return 0
    if action == "show":
        info = cps.show(args.checkpoint)
        lines = [f"{k}: {v}" for k, v in info.items() if k not in ("blobs", "chain")]
        lines.append(f"chain: {' -> '.join(info['chain'])}")
        lines.append(f"blobs: {len(info['blobs'])}")
        ctx.emit(info, "\n".join(lines))
        return 0
    if action == "restore":
        res = cps.restore(args.checkpoint)
        lines = [f"restored workflow {res['workflow_id']} from checkpoint {res['restored_from']}"]
        lines += [f"warning: {w}" for w in res["warnings"]]
        for w in res["warnings"]:
            if ctx.json:
                sys.stderr.write(f"claude-state: warning: {w}\n")
        ctx.emit(res, "\n".join(lines))
        return 0
    if action == "verify":
        if args.id is not None:
            validate_id(args.id, "workflow id")
        problems = cps.verify(args.id)
        checked = sum(len(cps.ids(w)) for w in ([args.id] if args.id else cps.workflow_ids()))
        lines = [f"checked {checked} checkpoint(s)"]
        lines += [f"  DAMAGED  {p['path']} [{p['kind']}]: {p['detail']}" for p in problems]
        lines.append("ok" if not problems else f"{len(problems)} problem(s) found")
        ctx.emit({"ok": not problems, "checked": checked, "problems": problems}, "\n".join(lines))
        return 0 if not problems else 1
    if action == "suggest":
        validate_id(args.id, "workflow id")
        res = cps.suggest(args.id)
        lines = [f"recommended: {res['recommended'] or 'none'}"]
        lines += [f"warning: {w}" for w in res["warnings"]]
        ctx.emit({"workflow_id": args.id, **res}, "\n".join(lines))
        return 0
    raise AssertionError(action)  # pragma: no cover - argparse restricts the choices
