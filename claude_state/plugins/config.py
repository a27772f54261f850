"""The project's claude-state config (``.claude/claude-state.json``) and its hot digest.

The config holds what a user opts into: extra plugins, the blocking policies, custom
redaction patterns, the auto-checkpoint cadence (``docs/configuration.md``). The hook's
hot path may not parse JSON (``import json`` costs ~9 ms, see ``docs/hooks.md``), so each
cold hook event compiles the few settings the hot path needs into ``<state>/hot.conf``,
plain ``key=value`` lines that the hot path reads with one ``open()`` when it exists.

Where the file is: ``$CLAUDE_STATE_CONFIG`` if set; else, when the state directory is
``<project>/.claude/state``, ``<project>/.claude/claude-state.json``; else
``<project>/.claude/claude-state.json`` with the project resolved as for the state dir.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_state.errors import ClaudeStateError, ConfigError
from claude_state.storage.layout import StateDir, find_project_dir

__all__ = [
    "HOT_CONF",
    "Config",
    "config_path",
    "config_stamp",
    "hot_conf_bytes",
    "load_config",
    "sync_hot_conf",
]

HOT_CONF = "hot.conf"
CONFIG_NAME = "claude-state.json"
DEFAULT_INLINE_LIMIT = 256 * 1024
_TOP_KEYS = frozenset({"plugins", "policies", "redaction", "auto_checkpoint", "inline_limit"})


@dataclass
class Config:
    """A validated project config; the defaults are what an absent file means."""

    plugins: list[str] = field(default_factory=list)
    keep_working: bool = False
    block_tools_when_paused: bool = False
    #: ``{"name", "regex", "triggers"}`` dicts, validated by compiling them.
    patterns: list[dict[str, Any]] = field(default_factory=list)
    every_steps: int = 5
    on_stop: bool = True
    on_pre_compact: bool = True
    inline_limit: int = DEFAULT_INLINE_LIMIT
    path: str | None = None

    def custom_patterns(self) -> list[Any]:
        """The custom redaction patterns, compiled (imports ``re``)."""
        from claude_state.plugins.redaction import CustomPattern

        return [CustomPattern(p["name"], p["regex"], p.get("triggers", ())) for p in self.patterns]


def config_path(state: StateDir, env: Mapping[str, str] | None = None) -> str:
    """Where the project config lives (see the module docstring)."""
    env = os.environ if env is None else env
    explicit = env.get("CLAUDE_STATE_CONFIG")
    if explicit:
        return os.path.abspath(explicit)
    parent = os.path.dirname(state.root)
    if os.path.basename(state.root) == "state" and os.path.basename(parent) == ".claude":
        return os.path.join(parent, CONFIG_NAME)
    project = env.get("CLAUDE_PROJECT_DIR") or find_project_dir()
    return os.path.join(project, ".claude", CONFIG_NAME)


def _bool(d: Mapping[str, Any], key: str, default: bool, where: str, path: str) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{where}.{key} must be true or false", path)
    return v


def _int(d: Mapping[str, Any], key: str, default: int, lo: int, where: str, path: str) -> int:
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ConfigError(f"{where}{key} must be an integer >= {lo}", path)
    return v


def _obj(d: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise ConfigError(f"{key} must be an object", path)
    return v


def parse_config(doc: Any, path: str = "<config>") -> Config:
    """Validate a config document. :raises ConfigError: naming the bad field."""
    if not isinstance(doc, dict):
        raise ConfigError("the config must be a JSON object", path)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}", path)
    plugins = doc.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p.strip() for p in plugins):
        raise ConfigError('plugins must be a list of "module" or "module:attr" strings', path)
    pol = _obj(doc, "policies", path)
    red = _obj(doc, "redaction", path)
    auto = _obj(doc, "auto_checkpoint", path)
    patterns = red.get("patterns", [])
    if not isinstance(patterns, list):
        raise ConfigError("redaction.patterns must be a list", path)
    checked: list[dict[str, Any]] = []
    for i, p in enumerate(patterns):
        if not isinstance(p, dict) or not isinstance(p.get("regex"), str):
            raise ConfigError(f"redaction.patterns[{i}] needs a string 'regex'", path)
        name = p.get("name", f"custom{i}")
        triggers = p.get("triggers", [])
        if not isinstance(triggers, list) or not all(
            isinstance(t, str) and t and "\t" not in t and "\n" not in t for t in triggers
        ):
            raise ConfigError(f"redaction.patterns[{i}].triggers must be literal strings", path)
        checked.append({"name": name, "regex": p["regex"], "triggers": list(triggers)})
    cfg = Config(
        plugins=[p.strip() for p in plugins],
        keep_working=_bool(pol, "keep_working", False, "policies", path),
        block_tools_when_paused=_bool(pol, "block_tools_when_paused", False, "policies", path),
        patterns=checked,
        every_steps=_int(auto, "every_steps", 5, 0, "auto_checkpoint.", path),
        on_stop=_bool(auto, "on_stop", True, "auto_checkpoint", path),
        on_pre_compact=_bool(auto, "on_pre_compact", True, "auto_checkpoint", path),
        inline_limit=_int(doc, "inline_limit", DEFAULT_INLINE_LIMIT, 1024, "", path),
        path=path,
    )
    try:
        cfg.custom_patterns()  # compile now: a bad regex is a config error, not a hook crash
    except ConfigError as exc:
        raise ConfigError(str(exc), path) from None
    return cfg


def load_config(state: StateDir, env: Mapping[str, str] | None = None) -> Config:
    """The project config, or the defaults when there is no file.

    :raises ConfigError: the file exists but is not valid JSON or not a valid config.
    """
    path = config_path(state, env)
    from claude_state.storage.safeio import read_regular

    try:
        # The project config may be a symlink the user made (followed); a FIFO or a
        # device is refused, never waited on.
        data = read_regular(path, follow=True)
    except FileNotFoundError:
        return Config()
    except (OSError, ClaudeStateError) as exc:  # unreadable, or a FIFO/symlink (safeio)
        raise ConfigError(f"cannot read the config: {exc}", path) from None
    import orjson

    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"the config is not valid JSON: {exc}", path) from None
    return parse_config(doc, path)


def config_stamp(path: str) -> int:
    """The config file's mtime in ns, 0 when it does not exist."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def hot_conf_bytes(cfg: Config, source: str | None = None) -> bytes:
    """The hot path's digest of *cfg*.

    Lines: ``inline_limit=N``, ``block_tools_when_paused=1``, one
    ``pattern=<name>\\t<regex>[\\t<trigger>...]`` per custom redaction pattern (regexes
    and triggers never hold tabs or newlines: :func:`parse_config` refuses them), and,
    with *source*, ``config=<path>`` and ``config_mtime=<ns>``: the hot path stats that
    file and takes the cold path (which rewrites this digest) as soon as it changes, so
    an edited config applies from the next event, not the next turn.
    """
    lines: list[str] = []
    if cfg.inline_limit != DEFAULT_INLINE_LIMIT:
        lines.append(f"inline_limit={cfg.inline_limit}")
    if cfg.block_tools_when_paused:
        lines.append("block_tools_when_paused=1")
    for p in cfg.patterns:
        lines.append("pattern=" + "\t".join([p["name"], p["regex"], *p["triggers"]]))
    if source is not None and "\n" not in source:
        lines.append(f"config={source}")
        lines.append(f"config_mtime={config_stamp(source)}")
    if not lines:
        return b""
    return ("version=1\n" + "\n".join(lines) + "\n").encode()


def sync_hot_conf(state: StateDir, cfg: Config, env: Mapping[str, str] | None = None) -> bool:
    """Make ``<state>/hot.conf`` match *cfg* (written only when it differs).

    :returns: True when the file changed.
    """
    path = os.path.join(state.root, HOT_CONF)
    want = hot_conf_bytes(cfg, config_path(state, env))
    from claude_state.errors import IntegrityError
    from claude_state.storage.atomic import read_file

    try:
        have: bytes | None = read_file(path)
    except (FileNotFoundError, IntegrityError):  # absent, or foreign: replaced below
        have = None
    if not want:
        if have is None:
            return False
        from claude_state.storage.atomic import remove

        remove(path)
        return True
    if have == want:
        return False
    from claude_state.storage.atomic import atomic_write

    state.ensure(sweep=False)
    atomic_write(path, want, state.temp)
    return True
