"""Every hook spec is documented in docs/hooks.md with its exact signature, and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from claude_state.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "hooks.md").read_text()
HOOKS = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "claude_state_spec"))
HEADINGS = dict(re.findall(r"^### `(\w+)\((.*?)\)`$", DOC, re.M))
TEST_SOURCES = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))


def test_there_are_hooks() -> None:
    assert {
        "session_start",
        "session_end",
        "workflow_start",
        "workflow_complete",
        "workflow_failed",
        "step_start",
        "step_complete",
        "step_failed",
        "checkpoint_created",
        "crash_detected",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_documented_with_its_signature(name: str) -> None:
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert name in HEADINGS, f"docs/hooks.md has no '### `{name}(...)`' section"
    assert HEADINGS[name] == params, f"documented as ({HEADINGS[name]}), spec is ({params})"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name: str) -> None:
    assert re.search(rf"^def test_hook_{name}\(", TEST_SOURCES, re.M), f"no test_hook_{name}"


def test_no_documented_hook_without_a_spec() -> None:
    assert set(HEADINGS) <= set(HOOKS)


def test_hookspec_has_a_docstring() -> None:
    assert all(getattr(hookspecs, n).__doc__ for n in HOOKS)
