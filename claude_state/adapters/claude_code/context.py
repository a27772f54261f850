"""The ``additionalContext`` text of ``SessionStart``: what a crash or a pause left.

Claude Code caps the text at 10,000 characters (longer text is moved to a file and the
agent sees a preview), and its docs advise factual statements over instructions, which
can trip prompt-injection defences (``reference/claude-code-hooks.md`` §3.2). So the
text states facts (which session crashed, which workflows it was driving, how far they
got, the step in flight, what it did last) and names the command that recovers, and it
is built to fit: full detail for the most recent sessions first, then the remaining
session ids alone, then a count.

Inputs are plain dicts (``RecoveryPlan.to_dict()`` and
``recovery.unfinished_workflows`` entries), so this module is testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_CHARS", "build_context", "describe_workflow"]

MAX_CHARS = 10_000
_PROMPT_CHARS = 300
_CALL_CHARS = 120
_MAX_CALLS = 5


def _clip(text: Any, n: int) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def describe_workflow(w: dict[str, Any]) -> str:
    """One line about an unfinished workflow: status, progress, step in flight."""
    name = f' "{_clip(w["name"], 80)}"' if w.get("name") else ""
    parts = [f"workflow {w.get('id')}{name}: {w.get('status')}"]
    progress = w.get("progress")
    if isinstance(progress, int | float):
        parts.append(f"{progress:g}% done")
    flight = w.get("steps_in_flight") or ([w["step_in_flight"]] if w.get("step_in_flight") else [])
    if flight:
        parts.append("step in flight: " + ", ".join(str(s) for s in flight))
    elif w.get("next_step"):
        parts.append(f"next step: {w['next_step']}")
    cp = w.get("last_checkpoint")
    if isinstance(cp, dict) and cp.get("id"):
        parts.append(f"last checkpoint {cp['id']} ({cp.get('created_at')})")
    if w.get("damaged"):
        parts.append(f"damaged: {_clip(w['damaged'], 160)}")
    if w.get("owned") is False:
        parts.append("now driven by another session")
    return "; ".join(parts)


def _call_line(c: dict[str, Any], *, in_flight: bool = False) -> str:
    """One tool call on one line (whitespace, newlines included, collapsed)."""
    summary = _clip(c.get("summary") or "", _CALL_CHARS)
    name = c.get("tool_name") or "tool"
    if in_flight:
        return f"{name}: {summary}" if summary else name
    status = c.get("status") or "?"
    return f"{name}: {summary} ({status})" if summary else f"{name} ({status})"


def _crash_section(plan: dict[str, Any]) -> str:
    sid = plan.get("session_id")
    activity = plan.get("last_activity") or {}
    lines = [f"Crashed session {sid} (last recorded activity {activity.get('at') or 'unknown'}):"]
    workflows = plan.get("recoverable_workflows") or []
    if workflows:
        for w in workflows:
            lines.append(f"- Unfinished {describe_workflow(w)}.")
    else:
        lines.append("- It was driving no unfinished workflow.")
    if activity.get("last_prompt"):
        lines.append(f'- Last prompt: "{_clip(activity["last_prompt"], _PROMPT_CHARS)}".')
    flight = plan.get("in_flight_tool_calls") or []
    flying = {c.get("tool_use_id") for c in flight if c.get("tool_use_id")}
    # One call a line: a Bash command holds "; " itself, so calls are never joined with
    # it; a call in flight is listed once, under "in flight", not also as a last call.
    calls = [c for c in activity.get("last_tool_calls") or [] if c.get("tool_use_id") not in flying]
    if calls:
        lines.append("- Last tool calls (oldest first):")
        lines.extend(f"  - {_call_line(c)}" for c in calls[-_MAX_CALLS:])
    if flight:
        lines.append("- Tool calls in flight when it stopped (no result recorded):")
        lines.extend(f"  - {_call_line(c, in_flight=True)}" for c in flight[:_MAX_CALLS])
    orphans = plan.get("orphans") or []
    if orphans:
        lines.append("- Processes it left running (still alive):")
        lines.extend(_process_lines(orphans))
        lines.append(f"- `claude-state recover {sid} --kill-orphans` ends them.")
    loss = plan.get("estimated_data_loss")
    if loss:
        lines.append(f"- Estimated data loss: {_clip(loss, 400)}.")
    lines.append(f"- `claude-state recover {sid}` recovers it (`--dry-run` shows the plan).")
    return "\n".join(lines)


def _process_lines(orphans: Sequence[dict[str, Any]]) -> list[str]:
    """One process a line: pid, command, how long it has run."""
    lines = []
    for o in orphans[:_MAX_CALLS]:
        age = o.get("age_seconds")
        since = f", running {int(age)}s" if isinstance(age, int | float) else ""
        lines.append(
            f"  - pid {o.get('pid')}: {_clip(o.get('command') or '?', _CALL_CHARS)}{since}"
        )
    if len(orphans) > _MAX_CALLS:
        lines.append(f"  - and {len(orphans) - _MAX_CALLS} more")
    return lines


def _left_running_section(sid: str, orphans: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"The previous agent of this session ({sid}) was killed; processes it started are "
        "still running:"
    ]
    lines.extend(_process_lines(orphans))
    lines.append("`kill <pid>` ends one that is no longer needed.")
    return "\n".join(lines)


def _resume_section(sid: str, source: str, workflows: Sequence[dict[str, Any]]) -> str:
    lines = [f"This session ({sid}, {source}) has unfinished workflows recorded by claude-state:"]
    for w in workflows:
        lines.append(f"- {describe_workflow(w)}.")
    lines.append("`claude-state workflow show <id>` shows a workflow's steps.")
    return "\n".join(lines)


def build_context(
    crashed: Sequence[dict[str, Any]] = (),
    *,
    session_id: str | None = None,
    source: str | None = None,
    unfinished: Sequence[dict[str, Any]] = (),
    left_running: Sequence[dict[str, Any]] = (),
    limit: int = MAX_CHARS,
) -> str:
    """The context text, at most *limit* characters ("" when there is nothing to say).

    :param crashed: recovery plans (dicts) of crashed sessions not yet recovered, in any
        order; the most recently active are described first.
    :param session_id: the session starting; with *unfinished*, its own open workflows
        (after a resume or a compaction).
    :param left_running: processes the session's own killed agent left running (a
        resume after a crash: :attr:`RecoveryPlan.orphans` of the recovery it ran).
    """
    parts: list[str] = []
    if left_running and session_id:
        parts.append(_left_running_section(session_id, left_running))
    if unfinished and session_id:
        parts.append(_resume_section(session_id, source or "resumed", unfinished))
    plans = sorted(
        crashed, key=lambda p: str((p.get("last_activity") or {}).get("at") or ""), reverse=True
    )
    if plans:
        n = len(plans)
        parts.append(
            f"claude-state found {n} crashed session{'s' if n != 1 else ''} in this project "
            "(the agent process died without ending the session)."
        )
    text = "\n\n".join(parts)
    if len(text) > limit:
        return text[: limit - 1] + "\u2026"
    # Full sections while they fit, keeping room for the tail listing the rest.
    rest: list[str] = []
    for i, plan in enumerate(plans):
        section = _crash_section(plan)
        reserve = 160 + sum(len(str(p.get("session_id"))) + 2 for p in plans[i + 1 :])
        if len(text) + 2 + len(section) + min(reserve, 4000) <= limit:
            text += "\n\n" + section
        else:
            rest = [str(p.get("session_id")) for p in plans[i:]]
            break
    if rest:
        head = "\n\nOther crashed sessions (`claude-state recover <id>` recovers each): "
        tail = ""
        shown: list[str] = []
        for j, sid in enumerate(rest):
            more = len(rest) - j - 1
            tail = f" and {more} more (`claude-state sessions list --crashed`)." if more else "."
            if len(text) + len(head) + len(", ".join([*shown, sid])) + len(tail) > limit:
                tail = f" and {len(rest) - j} more (`claude-state sessions list --crashed`)."
                break
            shown.append(sid)
        else:
            tail = "."
        text += head + ", ".join(shown) + tail
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text
