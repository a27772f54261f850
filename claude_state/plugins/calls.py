"""Calling hooks: each implementation isolated, every call traceable.

Every implementation is called on its own (:func:`call_hook`): one that raises is
logged under ``<state>/logs/plugins.log`` with its plugin's name, and the others still
run. pluggy's ``_multicall`` would stop at the first exception, and a third-party bug
must not cost the built-in persistence its events.

``CLAUDE_STATE_TRACE=1`` writes one line per hook implementation call to stderr (for
the hook command that lands in Claude Code's debug log); any other non-empty value
except ``0`` is a file path the lines are appended to.

Kept apart from :mod:`claude_state.plugins.manager` so the built-in plugins, which fire
hooks of their own (``checkpoint_created``), import this module and not the manager that
registers them: no import cycle.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import pluggy

from claude_state.errors import PluginError
from claude_state.storage.layout import StateDir

__all__ = ["call_hook", "log_plugin_error"]


def log_plugin_error(state: StateDir, message: str) -> None:
    """Append *message* to ``<state>/logs/plugins.log`` (never through a symlink)."""
    from claude_state.clock import now_iso
    from claude_state.storage.safeio import append_line

    append_line(state.logs, "plugins.log", f"{now_iso()} {message}\n".encode("utf-8", "replace"))


def _trace_target(env: Mapping[str, str]) -> str | None:
    value = env.get("CLAUDE_STATE_TRACE", "").strip()
    if not value or value == "0":
        return None
    return value


def _short(value: Any, n: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _trace(target: str, line: str) -> None:
    data = f"claude-state trace: {line}\n"
    if target == "1":
        try:
            sys.stderr.write(data)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        return
    try:
        with open(target, "a", encoding="utf-8") as f:
            f.write(data)
    except OSError:
        pass


def call_hook(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> list[Any]:
    """Call hook *name* on every plugin, each isolated; their non-None results.

    Implementations run in pluggy's order (last registered first). Wrappers are not
    supported for these hooks: an implementation marked as a wrapper is skipped.
    """
    hook = getattr(pm.hook, name, None)
    if hook is None:
        raise PluginError(f"unknown hook {name!r}")
    env = os.environ
    trace = _trace_target(env)
    if trace is not None:
        _trace(trace, f"{name}({', '.join(f'{k}={_short(v, 60)}' for k, v in kwargs.items())})")
    results: list[Any] = []
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {a: kwargs[a] for a in impl.argnames if a in kwargs}
        t0 = time.perf_counter()
        try:
            res = impl.function(**args)
        except Exception as exc:
            root = getattr(pm, "_claude_state_root", None)
            if root is not None:
                log_plugin_error(
                    StateDir(root), f"plugin {impl.plugin_name!r} failed in {name}: {exc!r}"
                )
            if trace is not None:
                _trace(trace, f"  {impl.plugin_name}: raised {exc!r}")
            continue
        if trace is not None:
            ms = (time.perf_counter() - t0) * 1000
            _trace(trace, f"  {impl.plugin_name} -> {_short(res)} ({ms:.2f} ms)")
        if res is not None:
            results.append(res)
    return results
