"""Loading plugins (lazily, once per state dir) and calling hooks (isolated, traceable).

What loads, in order: the built-in plugins (persistence, auto-checkpoint, policies),
the ``claude_state`` entry-point group of installed distributions, and the ``plugins``
list of the project config. ``CLAUDE_STATE_PLUGINS`` chooses: ``all`` (default),
``builtin`` (no third-party code), ``none`` (no hooks fire at all).

Hooks are called through :func:`claude_state.plugins.calls.call_hook` (re-exported
here): each implementation isolated, every call traceable (``CLAUDE_STATE_TRACE``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

import pluggy

from claude_state.errors import PluginError
from claude_state.plugins import hookspecs
from claude_state.plugins.calls import call_hook, log_plugin_error
from claude_state.plugins.config import Config, load_config
from claude_state.plugins.hookspecs import hookimpl
from claude_state.storage.layout import StateDir

__all__ = [
    "ENTRY_POINT_GROUP",
    "call_hook",
    "get_plugin_manager",
    "hookimpl",
    "plugin_mode",
    "reset",
]

ENTRY_POINT_GROUP = "claude_state"

_MANAGERS: dict[str, pluggy.PluginManager] = {}


def plugin_mode(env: Mapping[str, str] | None = None) -> str:
    """``all``, ``builtin`` or ``none`` from ``CLAUDE_STATE_PLUGINS`` (unknown = all)."""
    value = (os.environ if env is None else env).get("CLAUDE_STATE_PLUGINS", "all").strip()
    return value if value in ("builtin", "none") else "all"


def reset() -> None:
    """Forget loaded managers (tests; a long-lived process after a config change)."""
    _MANAGERS.clear()


def _load_object(spec: str) -> object:
    """Import ``module`` or ``module:attr``; a class is instantiated without arguments.

    :raises PluginError: the module or attribute cannot be loaded.
    """
    module_name, _, attr = spec.partition(":")
    try:
        obj: object = importlib.import_module(module_name.strip())
        for part in attr.strip().split(".") if attr.strip() else []:
            obj = getattr(obj, part)
        if isinstance(obj, type):
            obj = obj()
    except Exception as exc:
        raise PluginError(
            f"cannot load plugin {spec!r}: {type(exc).__name__}: {exc}", spec
        ) from exc
    return obj


def _builtin(pm: pluggy.PluginManager, state: StateDir, config: Config) -> None:
    from claude_state.plugins.autocheckpoint import AutoCheckpointPlugin
    from claude_state.plugins.persistence import PersistencePlugin
    from claude_state.plugins.policies import PolicyPlugin

    pm.register(PersistencePlugin(state), name="claude_state.persistence")
    pm.register(AutoCheckpointPlugin(state, config, pm), name="claude_state.autocheckpoint")
    pm.register(PolicyPlugin(state, config), name="claude_state.policies")


def _entry_points(pm: pluggy.PluginManager, state: StateDir) -> None:
    """Register the ``claude_state`` entry points, one failure at a time (logged)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            if isinstance(plugin, type):
                plugin = plugin()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            log_plugin_error(
                state, f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {exc!r}"
            )


def get_plugin_manager(
    state: StateDir | None = None,
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
) -> pluggy.PluginManager:
    """The plugin manager for *state* (loaded once per process and state dir).

    :param config: the project config (default: read it). Its ``plugins`` that fail to
        load are logged and skipped: the hook must go on.
    """
    if state is None:
        state = StateDir.resolve(env=env)
    pm = _MANAGERS.get(state.root)
    if pm is not None:
        return pm
    mode = plugin_mode(env)
    if config is None:
        try:
            config = load_config(state, env)
        except Exception as exc:
            log_plugin_error(state, f"config ignored: {exc}")
            config = Config()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if mode != "none":
        _builtin(pm, state, config)
    if mode == "all":
        _entry_points(pm, state)
        for spec in config.plugins:
            if pm.get_plugin(spec) is not None:
                continue
            try:
                pm.register(_load_object(spec), name=spec)
            except Exception as exc:
                log_plugin_error(state, f"plugin {spec!r} from the config failed to load: {exc}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        log_plugin_error(state, f"plugin implements an unknown hook: {exc}")
    pm._claude_state_root = state.root  # type: ignore[attr-defined]  # for logging
    _MANAGERS[state.root] = pm
    return pm
