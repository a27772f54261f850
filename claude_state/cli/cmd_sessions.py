"""``claude-state sessions list|show|events|export|import``: inspect and move recorded sessions."""

from __future__ import annotations

import argparse
from typing import Any

from claude_state.cli.common import Context


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sessions",
        help="list and show recorded agent sessions and their events; export and import them",
        description="Sessions recorded by the Claude Code hook: their status (active, "
        "crashed, ended, recovered), owner process, activity and workflows.",
    )
    ss = p.add_subparsers(
        dest="sessions_command", metavar="SUBCOMMAND", required=True, parser_class=type(p)
    )
    lp = ss.add_parser("list", help="list sessions (newest activity first)")
    g = lp.add_mutually_exclusive_group()
    g.add_argument("--crashed", action="store_true", help="only crashed sessions")
    g.add_argument("--active", action="store_true", help="only active sessions")
    lp.set_defaults(func=run_list)
    sp = ss.add_parser("show", help="show one session in detail")
    sp.add_argument("sid", metavar="SID")
    sp.set_defaults(func=run_show)
    vp = ss.add_parser(
        "events",
        help="list every hook event recorded for a session, in journal order",
        description="Every hook event recorded in a session's journal, in order: its "
        "sequence number, receive time, event name and tool call, so what the agent fired "
        "can be compared with what was recorded.",
    )
    vp.add_argument("sid", metavar="SID")
    vp.set_defaults(func=run_events)
    ep = ss.add_parser(
        "export",
        help="write a session, its workflows, checkpoints and blobs to one checksummed bundle",
    )
    ep.add_argument("sid", metavar="SID")
    ep.add_argument(
        "-o", "--output", metavar="FILE", help="bundle file (default: ./<SID>.claude-state-bundle)"
    )
    ep.set_defaults(func=run_export)
    ip = ss.add_parser("import", help="verify a bundle completely, then import it")
    ip.add_argument("file", metavar="FILE")
    ip.set_defaults(func=run_import)


def _fmt(v: Any) -> str:
    return "-" if v is None or v == "" else str(v)


def _summaries(ctx: Context) -> list[dict[str, Any]]:
    from claude_state.domain.sessions import SessionStore
    from claude_state.errors import IntegrityError, NotFoundError

    sd = ctx.state_if_exists()
    if not sd.exists():
        return []
    from claude_state.domain.damage import classify

    store = SessionStore(sd)
    out = []
    for sid in store.ids():
        # A damaged lease, record or journal: listed with the damage named, its status
        # judged from what still reads (domain/damage.py), never dropped or "active".
        d = classify(sd, sid)
        try:
            row = store.summary(sid, rec=d.record if d else None)
        except NotFoundError:
            continue
        except IntegrityError:
            if d is None:
                continue
            row = _damaged_row(sid, d)
        row["problems"] = d.problems if d is not None else []
        if d is not None:
            row["status"] = d.status
        out.append(row)
    out.sort(key=lambda s: s["last_activity"] or "", reverse=True)
    return out


def _damaged_row(sid: str, d: Any) -> dict[str, Any]:
    """The ``sessions list`` row of a session whose record does not read."""
    from claude_state.domain.sessions import iso_or_none

    rec = d.record
    lease = d.lease
    return {
        "id": sid,
        "status": d.status,
        "pid": lease.info.owner.pid if lease is not None else None,
        "host": lease.info.owner.host if lease is not None else None,
        "started_at": iso_or_none(rec.started_at) if rec is not None else None,
        "last_activity": iso_or_none(rec.last_activity) if rec is not None else None,
        "workflows": list(rec.workflows) if rec is not None else [],
    }


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = _summaries(ctx)
    if args.crashed:
        rows = [r for r in rows if r["status"] == "crashed"]
    elif args.active:
        rows = [r for r in rows if r["status"] == "active"]
    if not rows:
        ctx.emit(rows, "no sessions")
        return 0
    head = ("SESSION", "STATUS", "PID", "HOST", "STARTED", "LAST ACTIVITY", "WORKFLOWS")
    table = [head] + [
        (
            r["id"],
            r["status"],
            _fmt(r["pid"]),
            _fmt(r["host"]),
            _fmt(r["started_at"]),
            _fmt(r["last_activity"]),
            ",".join(r["workflows"]) or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    for r in rows:
        for p in r["problems"]:
            lines.append(f"damaged: {r['id']}: {p['kind']} {p['path']}: {p['detail']}")
    if any(r["status"] == "crashed" for r in rows):
        lines.append("\ncrashed sessions can be recovered: claude-state recover")
    ctx.emit(rows, "\n".join(lines))
    return 0


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.damage import classify
    from claude_state.domain.sessions import SessionStore
    from claude_state.ids import validate_id

    sid = validate_id(args.sid, "session id")
    sd = ctx.state_if_exists()
    harm = classify(sd, sid)  # a damaged record still fails below, naming its file
    d = SessionStore(sd).summary(sid, detail=True, rec=harm.record if harm else None)
    d["problems"] = harm.problems if harm is not None else []
    if harm is not None:
        d["status"] = harm.status
    lines = [
        f"session        {d['id']}",
        f"status         {d['status']}",
        f"owner          pid {_fmt(d['pid'])} on {_fmt(d['host'])}",
        f"started        {_fmt(d['started_at'])}",
        f"last activity  {_fmt(d['last_activity'])}",
    ]
    if d["ended_at"]:
        lines.append(f"ended          {d['ended_at']} ({_fmt(d['end_reason'])})")
    if d["recovered_at"]:
        lines.append(f"recovered      {d['recovered_at']}")
    lines += [
        f"cwd            {_fmt(d['cwd'])}",
        f"events         {d['events']} ({d['tool_calls']} tool calls completed, "
        f"{d['failed_tool_calls']} failed)",
        f"workflows      {', '.join(d['workflows']) or '-'}",
        f"last prompt    {_fmt(d['last_prompt'])}",
    ]
    if d["last_tool_calls"]:
        lines.append("last tool calls:")
        for c in d["last_tool_calls"]:
            lines.append(
                f"  {_fmt(c.get('at'))}  {c.get('status', '?'):<11} "
                f"{_fmt(c.get('tool_name'))}  {_fmt(c.get('summary'))}"
            )
    if d["in_flight"]:
        lines.append(f"in flight (no PostToolUse): {len(d['in_flight'])}")
    for p in d["problems"]:
        lines.append(f"damaged: {p['kind']} {p['path']}: {p['detail']}")
    if d["status"] == "crashed":
        lines.append(f"\nthis session crashed; recover it with: claude-state recover {d['id']}")
    ctx.emit(d, "\n".join(lines))
    return 0


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def session_events(ctx: Context, sid: str) -> list[dict[str, Any]]:
    """The contract's ``sessions events`` rows for *sid*, read from its journal.

    Read straight from the journal (not the folded record) so nothing is summarised
    away: every event the hook made durable appears once, in ``seq`` order. A record
    that is not a JSON hook event (``{"t": <receive time>, "ev": {...}, ...}``, see
    :mod:`claude_state.storage.journal`) is skipped, as the catch-up skips (and logs) it.

    :raises NotFoundError: nothing of *sid* is on disk.
    """
    import orjson

    from claude_state.domain.sessions import SessionStore, iso_or_none
    from claude_state.errors import NotFoundError
    from claude_state.storage import journal

    state = ctx.state_if_exists()
    if not SessionStore(state).exists(sid):
        raise NotFoundError("session", sid)
    rows = []
    for seq, payload in journal.read(state, sid):
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        ev = doc.get("ev") if isinstance(doc, dict) else None
        t = doc.get("t") if isinstance(doc, dict) else None
        if not isinstance(ev, dict) or not isinstance(t, int | float) or isinstance(t, bool):
            continue
        rows.append(
            {
                "seq": seq,
                "event": _str_or_none(ev.get("hook_event_name")),
                "tool_name": _str_or_none(ev.get("tool_name")),
                "tool_use_id": _str_or_none(ev.get("tool_use_id")),
                "at": iso_or_none(float(t)),
            }
        )
    return rows


def run_events(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.ids import validate_id

    sid = validate_id(args.sid, "session id")
    rows = session_events(ctx, sid)
    lines = [
        (
            f"{r['seq']:>5}  {_fmt(r['at'])}  {_fmt(r['event']):<18}  "
            f"{r['tool_name'] or ''}  {r['tool_use_id'] or ''}"
        ).rstrip()
        for r in rows
    ]
    ctx.emit(rows, "\n".join(lines) if lines else f"session {sid}: no events recorded")
    return 0


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from claude_state.domain.bundle import export_session
    from claude_state.ids import validate_id

    sid = validate_id(args.sid, "session id")
    path = args.output or os.path.join(os.getcwd(), f"{sid}.claude-state-bundle")
    size = export_session(ctx.state_if_exists(), sid, path)
    ctx.emit(
        {"session_id": sid, "path": os.path.abspath(path), "bytes": size},
        f"exported session {sid} to {path} ({size} bytes)",
    )
    return 0


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    from claude_state.domain.bundle import import_bundle, max_bundle_bytes
    from claude_state.errors import BundleError, NotFoundError, StorageError

    limit = max_bundle_bytes()
    try:
        with open(args.file, "rb") as f:
            data = f.read(limit + 1)  # never more than an import would accept
    except FileNotFoundError:
        raise NotFoundError("bundle file", args.file) from None
    except OSError as exc:
        raise StorageError(
            f"could not read {args.file}: {exc.strerror}", args.file, exc.errno
        ) from None
    if len(data) > limit:
        raise BundleError(f"bundle file {args.file} is over the limit of {limit} bytes")
    # Not ctx.state: a refused import must not even create the state directory (the
    # import creates it itself once the bundle has been verified).
    result = import_bundle(ctx.state_if_exists(), data)
    d = result.to_dict()
    if result.imported:
        human = (
            f"imported session {result.session_id}: {result.events} events, "
            f"{len(result.workflows)} workflow(s), {result.checkpoints} checkpoint(s), "
            f"{result.blobs} blob(s)"
        )
    else:
        human = f"session {result.session_id} is already here with the same content"
    ctx.emit(d, human)
    return 0
