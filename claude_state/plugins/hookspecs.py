"""The hook specifications: what claude-state tells its plugins.

One function per hook, each documented in ``docs/hooks.md`` (heading = the exact
signature, parameters, an example); ``tests/test_hookspecs_docs.py`` fails when a hook is
undocumented, documented with another signature, or has no ``test_hook_<name>`` test.

Hooks are called with keyword arguments only, and an implementation may accept any
subset of a hook's parameters (pluggy's rule), so a parameter added here later breaks no
plugin. Parameters are a few stable, rich objects (:mod:`claude_state.plugins.objects`
and the domain's ``Workflow``/``Step``) rather than many loose values.

Return values are ignored. An exception in an implementation is logged (with the
plugin's name) and does not stop the other plugins or the agent.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "claude_state"
hookspec = pluggy.HookspecMarker(PROJECT)
#: The marker plugins put on their implementations, beside the specs it pairs with
#: (``from claude_state.plugins import hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)

# -- sessions (fed from the session journal, in order) ----------------------------------


@hookspec
def session_start(session: Any, event: Any) -> None:
    """A Claude Code session started, resumed, was cleared or compacted (``SessionStart``)."""


@hookspec
def session_end(session: Any, reason: str) -> None:
    """A session ended (``SessionEnd``); *reason* as Claude Code gave it."""


@hookspec
def user_prompt(session: Any, prompt: str) -> None:
    """The user submitted a prompt (``UserPromptSubmit``)."""


@hookspec
def tool_call_start(session: Any, call: Any) -> None:
    """The agent is about to run a tool (``PreToolUse``)."""


@hookspec
def tool_call_complete(session: Any, call: Any) -> None:
    """A tool call finished, successfully or not (``PostToolUse``/``PostToolUseFailure``)."""


@hookspec
def subagent_start(session: Any, event: Any) -> None:
    """A subagent was spawned (``SubagentStart``)."""


@hookspec
def subagent_stop(session: Any, event: Any) -> None:
    """A subagent finished (``SubagentStop``)."""


@hookspec
def turn_end(session: Any, event: Any) -> None:
    """The agent finished responding to a prompt (``Stop``)."""


@hookspec
def pre_compact(session: Any, trigger: str) -> None:
    """The conversation is about to be compacted (``PreCompact``); *trigger* is
    ``manual`` or ``auto``."""


@hookspec
def hook_event(session: Any, event: Any) -> None:
    """Every recorded hook event, known or not, before its specific hook."""


# -- workflows (fired by the operations that change them) --------------------------------


@hookspec
def workflow_start(workflow: Any) -> None:
    """A workflow's first step started (it became ``running``)."""


@hookspec
def workflow_complete(workflow: Any) -> None:
    """A workflow completed: every step is completed or skipped."""


@hookspec
def workflow_failed(workflow: Any, step: Any) -> None:
    """A workflow failed because *step* failed with no retry left."""


@hookspec
def workflow_paused(workflow: Any) -> None:
    """A workflow was paused."""


@hookspec
def workflow_resumed(workflow: Any) -> None:
    """A paused workflow was resumed."""


@hookspec
def workflow_cancelled(workflow: Any) -> None:
    """A workflow was cancelled."""


@hookspec
def step_start(workflow: Any, step: Any) -> None:
    """A step became ``running``."""


@hookspec
def step_complete(workflow: Any, step: Any) -> None:
    """A step became ``completed``."""


@hookspec
def step_failed(workflow: Any, step: Any, error: str | None) -> None:
    """A step became ``failed``; *error* is its error text."""


# -- checkpoints and crashes --------------------------------------------------------------


@hookspec
def checkpoint_created(checkpoint: dict[str, Any]) -> None:
    """A checkpoint was written (any type)."""


@hookspec
def crash_detected(session_id: str, plan: Any) -> None:
    """A crashed session was found (once per crashed session)."""
