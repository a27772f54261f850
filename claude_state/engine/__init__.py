"""Durable execution of workflow DAGs in Python (see :mod:`claude_state.engine.runner`)."""

from claude_state.engine.runner import Runner, StepContext, StepTimeout

__all__ = ["Runner", "StepContext", "StepTimeout"]
