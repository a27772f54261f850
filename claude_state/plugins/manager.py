"""Loading plugins (lazily, once per state dir) and calling hooks (isolated, traceable).

What loads, in order: the built-in plugins (persistence, auto-checkpoint, policies),
the ``claude_state`` entry-point group of installed distributions, and the ``plugins``
list of the project config. ``CLAUDE_STATE_PLUGINS`` chooses: ``all`` (default),
``builtin`` (no third-party code), ``none`` (no hooks fire at all).

``CLAUDE_STATE_TRACE=1`` writes one line per hook implementation call to stderr (for
the hook command that lands in Claude Code's debug log); any other non-empty value
except ``0`` is a file path the lines are appended to.

Every implementation is called on its own (:func:`call_hook`): one that raises is
logged under ``<state>/logs/plugins.log`` with its plugin's name, and the others still
run. pluggy's ``_multicall`` would stop at the first exception, and a third-party bug
must not cost the built-in persistence its events.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import pluggy

from claude_state.errors import PluginError
from claude_state.plugins import hookspecs
from claude_state.plugins.config import Config, load_config
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
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

_MANAGERS: dict[str, pluggy.PluginManager] = {}


def plugin_mode(env: Mapping[str, str] | None = None) -> str:
    """``all``, ``builtin`` or ``none`` from ``CLAUDE_STATE_PLUGINS`` (unknown = all)."""
    value = (os.environ if env is None else env).get("CLAUDE_STATE_PLUGINS", "all").strip()
    return value if value in ("builtin", "none") else "all"


def reset() -> None:
    """Forget loaded managers (tests; a long-lived process after a config change)."""
    _MANAGERS.clear()


def _log(state: StateDir, message: str) -> None:
    from claude_state.clock import now_iso
    from claude_state.storage.safeio import append_line  # never through a symlink

    append_line(state.logs, "plugins.log", f"{now_iso()} {message}\n".encode("utf-8", "replace"))


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
            _log(state, f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {exc!r}")


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
            _log(state, f"config ignored: {exc}")
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
                _log(state, f"plugin {spec!r} from the config failed to load: {exc}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        _log(state, f"plugin implements an unknown hook: {exc}")
    pm._claude_state_root = state.root  # type: ignore[attr-defined]  # for logging
    _MANAGERS[state.root] = pm
    return pm


# -- calling ------------------------------------------------------------------------------


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
                _log(StateDir(root), f"plugin {impl.plugin_name!r} failed in {name}: {exc!r}")
            if trace is not None:
                _trace(trace, f"  {impl.plugin_name}: raised {exc!r}")
            continue
        if trace is not None:
            ms = (time.perf_counter() - t0) * 1000
            _trace(trace, f"  {impl.plugin_name} -> {_short(res)} ({ms:.2f} ms)")
        if res is not None:
            results.append(res)
    return results
