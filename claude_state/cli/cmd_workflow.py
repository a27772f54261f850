"""``claude-state workflow ...``: create, inspect and drive durable workflows.

Subcommands (``docs/cli-contract.md`` fixes the first eight and their JSON keys)::

    workflow create FILE|-            {"id", "name", "status", "steps"}
    workflow list                     [{"id", "name", "status", "progress", "current_step"}]
    workflow show ID [--outputs] [--history] [--metrics]
                                      {"id", "name", "status", "progress", "current_step",
                                       "steps": [{"id", "status", "deps", "attempts"}], "data"}
    workflow step ID STEP --status S [--output JSON | --output-file F] [--error TEXT]
                                      [--agent-state JSON]
    workflow pause|resume|cancel ID   {"id", "status", "progress", "current_step"}
    workflow rollback ID (--steps N | --to CHECKPOINT)
    workflow delete ID                {"id", "deleted"}
    workflow data ID KEY [VALUE_JSON] [--delete]

Every change goes through :class:`WorkflowStore` (one durable op); the library decides
what is allowed and raises typed errors that the dispatcher maps to the contract's exit
codes (2 bad input, 3 unknown, 4 refused transition). Plugin hooks fire after a change
is durable, through the plugins' workflow listener when that package is installed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from claude_state.errors import InvalidInputError

if TYPE_CHECKING:
    from claude_state.cli.common import Context
    from claude_state.domain.model import Workflow
    from claude_state.domain.store import WorkflowStore

STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped")


def register(subparsers: Any) -> None:
    """Add ``workflow`` and its subcommands."""
    p = subparsers.add_parser(
        "workflow",
        help="create, inspect and drive durable workflows",
        description="Create workflows from JSON definitions, update their steps, pause, "
        "resume, cancel and roll them back.",
    )
    sub = p.add_subparsers(dest="workflow_command", metavar="ACTION", required=True)

    c = sub.add_parser("create", help="create a workflow from a JSON definition")
    c.add_argument("file", metavar="FILE", help="definition file, or - for stdin")
    c.set_defaults(func=run, action="create")

    ls = sub.add_parser("list", help="list workflows")
    ls.set_defaults(func=run, action="list")

    s = sub.add_parser("show", help="show a workflow and its steps")
    s.add_argument("id", metavar="ID")
    s.add_argument("--outputs", action="store_true", help="include step outputs")
    s.add_argument("--history", action="store_true", help="include the transition history")
    s.add_argument("--metrics", action="store_true", help="include per-workflow metrics")
    s.set_defaults(func=run, action="show")

    st = sub.add_parser("step", help="update a step's status, output, error or agent state")
    st.add_argument("id", metavar="ID")
    st.add_argument("step", metavar="STEP")
    st.add_argument("--status", choices=STEP_STATUSES, help="the new status")
    out = st.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="JSON", help="the step's output (a JSON value)")
    out.add_argument(
        "--output-file", metavar="FILE", help="read the output JSON from FILE (- for stdin)"
    )
    st.add_argument("--error", metavar="TEXT", help="error text (for a failed step)")
    st.add_argument(
        "--agent-state", metavar="JSON", help="replace the agent's saved state for the step"
    )
    st.set_defaults(func=run, action="step")

    for name, text in (
        ("pause", "pause a workflow (step updates are refused until resumed)"),
        ("resume", "resume a paused workflow"),
        ("cancel", "cancel a workflow (final)"),
        ("delete", "delete a workflow's files (its checkpoints are kept)"),
    ):
        q = sub.add_parser(name, help=text)
        q.add_argument("id", metavar="ID")
        q.set_defaults(func=run, action=name)

    r = sub.add_parser("rollback", help="roll back N finished steps, or to a checkpoint")
    r.add_argument("id", metavar="ID")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--steps", type=int, metavar="N", help="last N finished steps to pending")
    g.add_argument("--to", metavar="CHECKPOINT", help="restore this checkpoint")
    r.set_defaults(func=run, action="rollback")

    d = sub.add_parser("data", help="get or set a workflow data key")
    d.add_argument("id", metavar="ID")
    d.add_argument("key", metavar="KEY")
    d.add_argument("value", metavar="VALUE_JSON", nargs="?", help="set KEY to this JSON value")
    d.add_argument("--delete", action="store_true", help="remove KEY")
    d.set_defaults(func=run, action="data")


# -- helpers ------------------------------------------------------------------------------


def parse_json(text: str | bytes, what: str) -> Any:
    """Parse JSON input, naming *what* and the line/column of a syntax error (exit 2)."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _read_input(path: str, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InvalidInputError(f"{what}: no such file: {path}") from None
    except OSError as exc:
        raise InvalidInputError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _store(ctx: Context) -> WorkflowStore:
    from claude_state.domain.fencing import caller_fence
    from claude_state.domain.store import WorkflowStore

    store = WorkflowStore(ctx.state)
    # Run on behalf of a session (CLAUDE_CODE_SESSION_ID): its writes are fenced, so a
    # session that a recovery took over is refused (exit 4) rather than writing on.
    store.caller = caller_fence(ctx.state)
    try:  # plugin hooks (step_start, workflow_complete...) after each durable op
        from claude_state.plugins.workflows import workflow_listener

        store.listeners.append(workflow_listener(ctx.state))
    except (ImportError, AttributeError):
        pass
    return store


def summary(wf: Workflow) -> dict[str, Any]:
    return {
        "id": wf.id,
        "name": wf.name,
        "status": wf.status,
        "progress": wf.progress,
        "current_step": wf.current_step,
    }


def _pct(p: float) -> str:
    return f"{p:g}%"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def _colour(ctx: Context, status: str) -> str:
    if not ctx.tty:
        return status
    code = {
        "completed": "32",
        "running": "36",
        "failed": "31",
        "cancelled": "90",
        "paused": "33",
    }.get(status)
    return f"\x1b[{code}m{status}\x1b[0m" if code else status


def show_dict(
    wf: Workflow,
    store: WorkflowStore | None,
    *,
    outputs: bool = False,
    history: bool = False,
    metrics: bool = False,
) -> dict[str, Any]:
    """The contract's ``workflow show`` document (extra keys only when asked)."""
    out = summary(wf)
    out["steps"] = [
        {"id": s.id, "status": s.status, "deps": list(s.deps), "attempts": s.attempts}
        for s in wf.steps
    ]
    out["data"] = {k: (store.resolve(v) if store else v) for k, v in wf.data.items()}
    if outputs:
        out["outputs"] = {
            s.id: (store.resolve(s.output) if store else s.output)
            for s in wf.steps
            if s.output is not None
        }
    if history:
        out["history"] = list(wf.history)
    if metrics:
        out["metrics"] = dict(wf.metrics)
    return out


# -- run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, ctx: Context) -> int:
    action = args.action
    handler = {
        "create": _create,
        "list": _list,
        "show": _show,
        "step": _step,
        "pause": _lifecycle,
        "resume": _lifecycle,
        "cancel": _lifecycle,
        "delete": _delete,
        "rollback": _rollback,
        "data": _data,
    }[action]
    return handler(args, ctx)


def _create(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.definition import parse_definition

    where = "definition" if args.file == "-" else f"definition {args.file}"
    obj = parse_json(_read_input(args.file, where), where)
    wf = parse_definition(obj)
    store = _store(ctx)
    store.create(wf)
    ctx.emit(
        {"id": wf.id, "name": wf.name, "status": wf.status, "steps": len(wf.steps)},
        f"created workflow {wf.id} ({len(wf.steps)} steps)",
    )
    return 0


def _list(args: argparse.Namespace, ctx: Context) -> int:
    store = _store(ctx)
    wfs = store.list()
    rows = [summary(wf) for wf in wfs]
    if not rows:
        ctx.emit([], "no workflows")
        return 0
    human = _table(
        [
            [
                r["id"],
                r["name"],
                _colour(ctx, r["status"]),
                _pct(r["progress"]),
                r["current_step"] or "-",
            ]
            for r in rows
        ],
        ["ID", "NAME", "STATUS", "PROGRESS", "CURRENT STEP"],
    )
    ctx.emit(rows, human)
    return 0


def _show(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.ids import validate_id

    validate_id(args.id, "workflow id")
    store = _store(ctx)
    wf = store.load(args.id)
    doc = show_dict(wf, store, outputs=args.outputs, history=args.history, metrics=args.metrics)
    lines = [
        f"workflow {wf.id}  {wf.name}",
        f"status {_colour(ctx, wf.status)}, progress {_pct(wf.progress)}, "
        f"current step {wf.current_step or '-'}",
        "",
        _table(
            [
                [
                    s.id,
                    _colour(ctx, s.status),
                    ", ".join(s.deps) or "-",
                    str(s.attempts),
                    (s.error or "")[:60],
                ]
                for s in wf.steps
            ],
            ["STEP", "STATUS", "DEPS", "ATTEMPTS", "ERROR"],
        ),
    ]
    if doc["data"]:
        lines += ["", "data:"] + [f"  {k} = {_short(v)}" for k, v in doc["data"].items()]
    if args.outputs:
        lines += ["", "outputs:"] + [f"  {k}: {_short(v)}" for k, v in doc["outputs"].items()]
    if args.history:
        lines += ["", "history:"] + [
            f"  {h.get('at')}  {h.get('event')} {h.get('step', '')} "
            f"{h.get('from', '')}{' -> ' if 'to' in h else ''}{h.get('to', '')} "
            f"{h.get('detail', '')}".rstrip()
            for h in wf.history
        ]
    if args.metrics:
        import orjson

        lines += ["", "metrics:", orjson.dumps(wf.metrics, option=orjson.OPT_INDENT_2).decode()]
    ctx.emit(doc, "\n".join(lines))
    return 0


def _short(v: Any, n: int = 80) -> str:
    import orjson

    text = v if isinstance(v, str) else orjson.dumps(v).decode()
    return text if len(text) <= n else text[: n - 3] + "..."


def _step(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.clock import now_iso
    from claude_state.domain.ops import op_agent_state, op_step
    from claude_state.ids import validate_id

    validate_id(args.id, "workflow id")
    validate_id(args.step, "step id")
    if args.status is None and args.agent_state is None:
        raise InvalidInputError("workflow step needs --status (or --agent-state)")
    if args.status is None and (args.output is not None or args.output_file or args.error):
        raise InvalidInputError("--output and --error need --status")
    at = now_iso()
    ops: list[dict[str, Any]] = []
    if args.agent_state is not None:
        state = parse_json(args.agent_state, "--agent-state")
        if not isinstance(state, dict):
            raise InvalidInputError("--agent-state must be a JSON object")
        ops.append(op_agent_state(args.step, state, at))
    if args.status is not None:
        kwargs: dict[str, Any] = {}
        if args.output is not None:
            kwargs["output"] = parse_json(args.output, "--output")
        elif args.output_file:
            kwargs["output"] = parse_json(
                _read_input(args.output_file, "--output-file"), "--output-file"
            )
        if args.error is not None:
            kwargs["error"] = args.error
        ops.append(op_step(args.step, args.status, at=at, **kwargs))
    store = _store(ctx)
    wf = store.apply_many(args.id, ops)
    step = wf.step(args.step)
    doc = {
        "workflow_id": wf.id,
        "step": step.id,
        "status": step.status,
        "attempts": step.attempts,
        "workflow_status": wf.status,
        "progress": wf.progress,
        "current_step": wf.current_step,
    }
    ctx.emit(
        doc,
        f"step {step.id} of {wf.id}: {_colour(ctx, step.status)} "
        f"(workflow {_colour(ctx, wf.status)}, {_pct(wf.progress)})",
    )
    return 0


def _lifecycle(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.clock import now_iso
    from claude_state.domain import ops
    from claude_state.ids import validate_id

    validate_id(args.id, "workflow id")
    make = {"pause": ops.op_pause, "resume": ops.op_resume, "cancel": ops.op_cancel}
    wf = _store(ctx).apply(args.id, make[args.action](now_iso()))
    ctx.emit(summary(wf), f"workflow {wf.id}: {_colour(ctx, wf.status)}")
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.errors import NotFoundError
    from claude_state.ids import validate_id

    validate_id(args.id, "workflow id")
    store = _store(ctx)
    if not store.exists(args.id):
        raise NotFoundError("workflow", args.id)
    store.delete(args.id)
    ctx.emit({"id": args.id, "deleted": True}, f"deleted workflow {args.id}")
    return 0


def _rollback(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.checkpoints import CheckpointStore
    from claude_state.domain.workflows import rollback

    store = _store(ctx)
    res = rollback(
        store, CheckpointStore(ctx.state, workflows=store), args.id, steps=args.steps, to=args.to
    )
    lines = []
    if args.to:
        lines.append(f"restored workflow {res['id']} from checkpoint {res['restored_from']}")
    else:
        lines.append(f"rolled back {', '.join(res['rolled_back'])} of {res['id']}")
    lines.append(f"status {_colour(ctx, res['status'])}, progress {_pct(res['progress'])}")
    lines += [f"warning: {w}" for w in res.get("warnings", [])]
    ctx.emit(res, "\n".join(lines))
    return 0


def _data(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.clock import now_iso
    from claude_state.domain.ops import op_delete_data, op_set_data
    from claude_state.errors import NotFoundError
    from claude_state.ids import validate_id

    validate_id(args.id, "workflow id")
    store = _store(ctx)
    if args.delete:
        if args.value is not None:
            raise InvalidInputError("give either VALUE_JSON or --delete, not both")
        store.apply(args.id, op_delete_data(args.key, now_iso()))
        ctx.emit(
            {"id": args.id, "key": args.key, "deleted": True}, f"removed {args.key} from {args.id}"
        )
        return 0
    if args.value is not None:
        value = parse_json(args.value, "VALUE_JSON")
        store.apply(args.id, op_set_data(args.key, value, now_iso()))
        ctx.emit(
            {"id": args.id, "key": args.key, "value": value},
            f"{args.id}: {args.key} = {_short(value)}",
        )
        return 0
    wf = store.load(args.id)
    if args.key not in wf.data:
        raise NotFoundError("data key", args.key, f"in workflow {args.id}")
    value = store.resolve(wf.data[args.key])
    ctx.emit({"id": args.id, "key": args.key, "value": value}, _short(value, 10_000))
    return 0
