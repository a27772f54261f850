"""Plugins: pluggy hooks between the harness adapters and claude-state's own features.

This package's ``__init__`` is imported on the hook's hot path (through
:mod:`claude_state.plugins.redaction_literals`), so it imports nothing: pluggy and the
manager load only when a hook is actually fired.

Public API:

* :func:`notify` - fire a hook (a no-op when ``CLAUDE_STATE_PLUGINS=none``).
* ``hookimpl`` - the marker plugins use: ``from claude_state.plugins import hookimpl``.
* :mod:`claude_state.plugins.hookspecs` - the hooks (``docs/hooks.md``).
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from claude_state.storage.layout import StateDir

__all__ = ["hookimpl", "notify"]


def notify(name: str, /, *, state: "StateDir | None" = None, **kwargs: "Any") -> "list[Any]":
    """Fire hook *name* with *kwargs* on every loaded plugin; their non-None results.

    Loads the plugin manager on first use (for *state*, default: the resolved state
    dir). Never raises for a plugin's error (it is logged); raises
    :class:`~claude_state.errors.PluginError` only for an unknown hook name, a
    programming error.
    """
    if os.environ.get("CLAUDE_STATE_PLUGINS", "").strip() == "none":
        return []
    from claude_state.plugins.manager import call_hook, get_plugin_manager

    return call_hook(get_plugin_manager(state), name, **kwargs)


def __getattr__(name: str) -> "Any":
    if name == "hookimpl":
        from claude_state.plugins.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'claude_state.plugins' has no attribute {name!r}")
