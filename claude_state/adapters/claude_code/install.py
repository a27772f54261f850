"""Merge claude-state's hook entries into (and out of) a Claude Code ``settings.json``.

The settings file belongs to the user, not to us: we change only the handlers we can
recognise as ours, keep every other key, hook, matcher group and their order exactly as
they were, and refuse (:class:`~claude_state.errors.ConfigError`, exit 2) a file we
cannot parse rather than "repair" it. A refused file is never written.

This module is a library: it never prints and never exits. The CLI front end is
:mod:`claude_state.cli.cmd_install`.

Recognising our entries
    A handler is ours when its ``command`` (or, for the exec form, ``command`` plus
    ``args``) names the hot-path module :data:`HOT_MODULE`, or when it is the older form
    ``<path>/claude-state hook [...]``. No extra marker key is written: Claude Code
    validates the settings schema, and an unknown key in a handler or matcher group is a
    risk we do not need to take.

Known limit of a marker-free design
    An empty list or object the user had *before* installing (``"Stop": []``) that we
    then filled is indistinguishable, after installing, from one we created, so
    :func:`remove_hooks` drops it once our entry leaves it empty. Empty hook containers
    have no effect in Claude Code, so nothing the user relied on changes; containers we
    never touched (including empty ones) are always kept. If ``install`` created the file,
    ``uninstall`` leaves ``{}`` rather than deleting a file in the user's tree.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shlex
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_state.errors import (
    ClaudeStateError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    StorageError,
)

__all__ = [
    "EVENTS",
    "HOOK_CODE",
    "HOT_CODE",
    "HOT_MODULE",
    "MATCHERS",
    "NO_PYTHON_MESSAGE",
    "PORTABLE_COMMAND",
    "SCOPES",
    "TIMEOUTS",
    "InstallResult",
    "hook_command",
    "hook_entry",
    "install",
    "install_plan",
    "is_ours",
    "merge_hooks",
    "remove_hooks",
    "settings_path",
    "uninstall",
]

#: The module every hook command runs; its name is also how we recognise our entries.
HOT_MODULE = "claude_state.adapters.claude_code.hot"

#: The hot entry point alone (``hookutil``, benchmarks and older installs use it).
HOT_CODE = f"from {HOT_MODULE} import main; main()"

#: Events whose ``systemMessage`` Claude Code shows the user (it discards it on these).
_SILENT_EVENTS = ("SessionEnd", "PreCompact", "PostCompact", "Notification")

#: The Python source every command ``install`` writes passes to ``-c`` (and the plugin's
#: ``hooks/claude-state-hook`` runs; a test keeps the two identical). On success it is
#: :data:`HOT_CODE`. When the interpreter cannot import ``claude_state`` (a clone whose
#: ``.venv`` lacks it, a removed install) the hook must not fail silently, nor on every
#: event: it tells the user once per session through a ``systemMessage`` (the only hook
#: output Claude Code shows the user) and exits 0. "Once" is a marker per session id in a
#: private temp folder; on events whose ``systemMessage`` is discarded nothing is marked.
#: The text holds no single quote: it is single-quoted in shell commands.
HOOK_CODE = f"""import sys
try:
    from {HOT_MODULE} import main
except ImportError as exc:
    import json, os, stat, tempfile
    try:
        ev = json.loads(sys.stdin.buffer.read() or b"{{}}")
    except Exception:
        ev = {{}}
    ev = ev if isinstance(ev, dict) else {{}}
    if ev.get("hook_event_name") in ({", ".join('"' + e + '"' for e in _SILENT_EVENTS)}):
        raise SystemExit(0)
    sid = "".join(c for c in str(ev.get("session_id", "")) if c.isalnum() or c in "._-")
    try:
        d = os.path.join(tempfile.gettempdir(), "claude-state-%d" % os.getuid())
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(d)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            m = os.path.join(d, "hook-unavailable-" + (sid[:128] or "unknown"))
            os.close(os.open(m, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise SystemExit(0)
    except OSError:
        pass
    msg = ("claude-state: the hook cannot import claude_state with %s (%s), so nothing of "
           "this session is recorded. Install claude-state into that environment, or run "
           "claude-state install again." % (sys.executable, exc))
    sys.stdout.write(json.dumps({{"systemMessage": msg}}) + "\\n")
    raise SystemExit(0)
main()"""

#: What the shell says when it finds no interpreter at all (no Python to run
#: :data:`HOOK_CODE`): on ``SessionStart`` only, so once per session, from builtins only.
NO_PYTHON_MESSAGE = (
    "claude-state: the hook found no Python interpreter with claude-state installed "
    "(neither a .venv in the project nor claude-state on PATH), so nothing of this session "
    "is recorded. Install it (pip install claude-state) where the hook can find it."
)
_SH_NOTICE = (
    "read -r l; case $l in *'\"SessionStart\"'*) printf '%s\\n' "
    + '\'{"systemMessage":"'
    + NO_PYTHON_MESSAGE
    + "\"}'"
    + ";; esac; exit 0"
)

#: The command the committed project settings get (``.claude/settings.json``): the same
#: text on every machine, naming no path of this one. In order, with shell builtins only
#: (the hook runs twice per tool call; ``sh -c`` execs the interpreter, no extra
#: process): the project's own ``$CLAUDE_PROJECT_DIR/.venv/bin/python``, else the
#: ``claude-state`` console script on ``PATH`` (``claude-state hook``, whose shebang
#: names its interpreter), else a ``systemMessage`` on ``SessionStart`` and exit 0.
PORTABLE_COMMAND = (
    'p="$CLAUDE_PROJECT_DIR"/.venv/bin/python; '
    f'if [ -x "$p" ]; then exec "$p" -I -c {shlex.quote(HOOK_CODE)}; fi; '
    "if command -v claude-state >/dev/null 2>&1; then exec claude-state hook; fi; " + _SH_NOTICE
)

#: Events claude-state hooks into. Eight are the ones the CLI contract names. Three more
#: are worth their cost:
#:
#: - ``PostToolUseFailure``: ``PostToolUse`` fires only when a tool *succeeded*. Without
#:   the failure event, every failed tool call would stay "started, never finished" in the
#:   session record and look like a call in flight at a crash.
#: - ``SubagentStart``: pairs with ``SubagentStop``, so a subagent that was running when
#:   the session died is known to have been running (agent-backed workflow steps).
#:
#: - ``PostToolBatch``: fires once the whole batch of parallel tool calls has resolved,
#:   before the next model call, also for a call refused before it ran (which fires no
#:   ``PostToolUse``): the journal then shows where each turn's tool work ended.
#:   It takes no matcher.
#:
#: They exist in every Claude Code release recent enough to run this (2.0.43+, by
#: 2.1.119, and in the docs by 2026-06, seen firing in 2.1.332); the hot path records
#: any event it does not know and exits 0.
EVENTS: tuple[str, ...] = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "SessionEnd",
)

#: Matcher per event; events missing here get no ``matcher`` key at all.
#:
#: Tool events use ``"*"`` (every tool, MCP tools included). ``SessionStart`` deliberately
#: has no matcher instead of the common ``"startup|resume|clear|compact"``: that list
#: would silently miss ``source: "fork"`` (2.1.214+) and any source added later, and we
#: must see every session start to find crashed sessions. ``PreCompact`` (manual|auto),
#: ``SubagentStart``/``SubagentStop`` (agent type) and ``SessionEnd`` (reason) likewise
#: want every value, and ``UserPromptSubmit``/``Stop`` ignore matchers.
MATCHERS: dict[str, str] = {
    "PreToolUse": "*",
    "PostToolUse": "*",
    "PostToolUseFailure": "*",
}

#: ``timeout`` in seconds per event. The hot path takes milliseconds; a timeout only
#: bounds a pathological hang (a stuck disk, a lock held by a frozen process), and a
#: timed-out hook is cancelled without blocking anything, so keep them short where the
#: user waits on them.
#:
#: - Tool events, prompts, stops: 10 s (Claude Code's defaults are 600 s / 30 s).
#: - ``SessionStart`` and ``PreCompact``: 30 s. They may scan for crashed sessions or
#:   write a checkpoint, and neither delays the user much (SessionStart is deferred).
#: - ``SessionEnd``: 5 s. Claude Code gives all SessionEnd hooks a *shared* 1.5 s budget
#:   on exit, raised to the largest ``timeout`` found in settings files (up to 60 s;
#:   plugin timeouts do not raise it). Recording the session end durably (fsync) can
#:   exceed 1.5 s on a loaded machine, and a killed hook records nothing; 5 s gives
#:   headroom while capping how long quitting can be delayed when something is wrong.
TIMEOUTS: dict[str, int] = {
    "SessionStart": 30,
    "UserPromptSubmit": 10,
    "PreToolUse": 10,
    "PostToolUse": 10,
    "PostToolUseFailure": 10,
    "PostToolBatch": 10,
    "Stop": 10,
    "SubagentStart": 10,
    "SubagentStop": 10,
    "PreCompact": 30,
    "SessionEnd": 5,
}

#: ``--scope`` values.
SCOPES: tuple[str, ...] = ("project", "local", "user")

#: Mode for a settings file we create: Claude Code (same user) must read it, and it is
#: a configuration file, not our state, so the usual 0600 for state does not apply.
_NEW_FILE_MODE = 0o644


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install` / :func:`uninstall` did (or, with ``dry_run``, would do)."""

    #: The settings file (symlinks resolved: that is the file written).
    path: Path
    #: Whether the settings differ from the file's previous content.
    changed: bool
    #: The resulting settings object.
    settings: dict[str, Any]
    #: install: every event hooked; uninstall: the events our entries were removed from.
    events: tuple[str, ...] = field(default=())
    #: The scope written (install may write ``local`` when ``project`` was asked, see
    #: :func:`install_plan`), and why that file and that command.
    scope: str = "project"
    reason: str = ""
    command: str = ""
    #: The local settings our entries were removed from (a project install that works
    #: on this machine replaces an older machine-specific one: both would run).
    removed_from: Path | None = None


# -- the command ---------------------------------------------------------------------------


def _isolation_flags(python: str) -> str:
    """Interpreter flags for the hook command.

    ``-I`` (isolated mode) skips the user site-packages scan and, above all, keeps the
    working directory off ``sys.path``: the hook runs with the project as its cwd, and a
    project holding a ``claude_state/`` folder or an ``os.py`` must not be imported
    instead of ours. When claude-state itself lives in the *user* site-packages
    (``pip install --user``), ``-I`` would hide it, so we fall back to ``-E -P``: ignore
    ``PYTHON*`` variables and do not prepend the cwd (``-P`` is 3.11+, which this
    interpreter is, since it runs this code).
    """
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return "-I"  # another interpreter: we cannot inspect where it keeps packages
    try:
        import site

        user_site = site.getusersitepackages()
    except Exception:  # pragma: no cover - site is always there in CPython
        return "-I"
    # <root>/claude_state/adapters/claude_code/install.py -> <root>
    pkg_parent = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3))
    if user_site and _is_within(pkg_parent, user_site):
        return "-E -P"
    return "-I"


def _is_within(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def hook_command(python: str | None = None) -> str:
    """The shell command written into settings for every event.

    Format: ``<abs python> -I -c '<HOOK_CODE>'`` with the interpreter path quoted by
    :func:`shlex.quote` (so a path with spaces stays one word). The path is made absolute
    but symlinks are *not* resolved: a venv's ``bin/python`` is a symlink, and resolving
    it would lose the venv. The path exists only on this machine, so this command goes
    only into files that are not shared (local and user settings, see
    :func:`install_plan`); the committed project settings get :data:`PORTABLE_COMMAND`.
    """
    # Why not the ``claude-state hook`` console script or ``python -m``: pip's
    # console-script wrapper imports ``re`` (~10 ms) and ``-m`` goes through runpy
    # (~5 ms), and the hook runs twice per tool call (PreToolUse + PostToolUse). ``-c``
    # with a direct import of the hot module pays only interpreter start-up.
    exe = python if python is not None else sys.executable
    if not exe:
        raise ConfigError(
            "cannot determine the Python interpreter's path (sys.executable is empty); "
            "pass the interpreter explicitly"
        )
    exe = os.path.abspath(exe)
    return f"{shlex.quote(exe)} {_isolation_flags(exe)} -c {shlex.quote(HOOK_CODE)}"


def hook_entry(event: str, command: str) -> dict[str, Any]:
    """The handler object for *event*: ``{"type", "command", "timeout"}`` in that order."""
    return {"type": "command", "command": command, "timeout": TIMEOUTS.get(event, 10)}


def _group(event: str, command: str) -> dict[str, Any]:
    group: dict[str, Any] = {}
    if event in MATCHERS:
        group["matcher"] = MATCHERS[event]
    group["hooks"] = [hook_entry(event, command)]
    return group


def is_ours(handler: object) -> bool:
    """Whether a handler object was written by claude-state (any version, any path)."""
    if not isinstance(handler, dict):
        return False
    command = handler.get("command")
    if not isinstance(command, str):
        return False
    args = handler.get("args")
    text = command
    if isinstance(args, list):
        text = " ".join([command, *(a for a in args if isinstance(a, str))])
    if HOT_MODULE in text:
        return True
    # Older form: "<path>/claude-state hook [EVENT]".
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return (
        len(words) >= 2
        and (words[0] == "claude-state" or words[0].endswith("/claude-state"))
        and words[1] == "hook"
    )


# -- pure merge / remove -------------------------------------------------------------------


def _hooks_object(settings: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(settings, dict):
        raise ConfigError("settings must be a JSON object")
    hooks = settings.get("hooks")
    if hooks is None and "hooks" not in settings:
        return None
    if not isinstance(hooks, dict):
        raise ConfigError(f'"hooks" must be a JSON object, not {_json_type(hooks)}')
    return hooks


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _event_groups(hooks: dict[str, Any], event: str) -> list[Any]:
    groups = hooks[event]
    if not isinstance(groups, list):
        raise ConfigError(f'"hooks.{event}" must be a JSON array, not {_json_type(groups)}')
    return groups


def _strip_ours(groups: list[Any], keep_first: bool) -> tuple[list[Any], tuple[int, int] | None]:
    """Remove our handlers from *groups* (new list); optionally keep the first one.

    Returns the new list and the (group, handler) position of the kept handler. A group
    is dropped only when removing *our* handlers emptied it; groups that were already
    empty, or are not objects we understand, are left exactly as they were.
    """
    kept: tuple[int, int] | None = None
    out: list[Any] = []
    for group in groups:
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list) or not any(is_ours(h) for h in handlers):
            out.append(group)
            continue
        new_handlers: list[Any] = []
        for handler in handlers:
            if is_ours(handler) and not (keep_first and kept is None):
                continue
            if is_ours(handler):
                kept = (len(out), len(new_handlers))
            new_handlers.append(handler)
        if new_handlers:
            new_group = dict(group)
            new_group["hooks"] = new_handlers
            out.append(new_group)
    return out, kept


def merge_hooks(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Return a copy of *settings* with claude-state's handler on every event in EVENTS.

    Pure: *settings* is not modified. Every other key, event, matcher group and foreign
    handler keeps its value and position. For each event, an existing claude-state
    handler (any command path, old ``claude-state hook`` form included) is updated in
    place (command, type and timeout; other keys the user added to it are kept), extra
    copies are removed, and only when there is none is a new matcher group appended.
    Our handlers on events no longer in EVENTS are removed. Merging twice equals merging
    once.

    Raises :class:`ConfigError` when ``hooks`` or one of its event values has the wrong
    JSON type: we cannot merge into something we do not understand.
    """
    new = copy.deepcopy(settings)
    hooks = _hooks_object(new)
    if hooks is None:
        hooks = new["hooks"] = {}
    for event in list(hooks):
        if event in EVENTS or not isinstance(hooks[event], list):
            continue
        groups = hooks[event]
        stripped, _ = _strip_ours(groups, keep_first=False)
        if len(stripped) != len(groups) or stripped != groups:
            if stripped:
                hooks[event] = stripped
            else:
                del hooks[event]
    for event in EVENTS:
        if event not in hooks:
            hooks[event] = [_group(event, command)]
            continue
        groups, kept = _strip_ours(_event_groups(hooks, event), keep_first=True)
        if kept is None:
            groups.append(_group(event, command))
        else:
            gi, hi = kept
            group = groups[gi]
            handler = dict(group["hooks"][hi])
            handler.pop("args", None)  # exec-form args would change what command means
            handler["type"] = "command"
            handler["command"] = command
            handler["timeout"] = TIMEOUTS.get(event, 10)
            handler_list = list(group["hooks"])
            handler_list[hi] = handler
            group["hooks"] = handler_list
            if all(is_ours(h) for h in handler_list):
                # The group is ours alone: its matcher is ours to set too.
                if event in MATCHERS:
                    group["matcher"] = MATCHERS[event]
                else:
                    group.pop("matcher", None)
        hooks[event] = groups
    return new


def remove_hooks(settings: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of *settings* without any claude-state handler.

    Foreign handlers, keys and order are kept. A matcher group, an event list or the
    ``hooks`` object is removed only when removing our handlers is what left it empty;
    containers that were empty before (and everything we did not touch) stay.
    """
    new = copy.deepcopy(settings)
    hooks = _hooks_object(new)
    if hooks is None:
        return new
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue  # not ours to judge; Claude Code will complain about it itself
        stripped, _ = _strip_ours(groups, keep_first=False)
        if stripped == groups and len(stripped) == len(groups):
            continue
        if stripped:
            hooks[event] = stripped
        else:
            del hooks[event]
            if not hooks:
                del new["hooks"]
    return new


def _events_with_ours(settings: dict[str, Any]) -> tuple[str, ...]:
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    if not isinstance(hooks, dict):
        return ()
    found: list[str] = []
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            continue
        for group in groups:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(handlers, list) and any(is_ours(h) for h in handlers):
                found.append(event)
                break
    return tuple(found)


# -- files ---------------------------------------------------------------------------------


def settings_path(scope: str, project_dir: str | os.PathLike[str] | None = None) -> Path:
    """The settings file for *scope*.

    ``project`` -> ``<project>/.claude/settings.json`` (shared, committed);
    ``local`` -> ``<project>/.claude/settings.local.json`` (personal);
    ``user`` -> ``$CLAUDE_CONFIG_DIR/settings.json`` when that variable is set (Claude
    Code reads its user configuration there), else ``$HOME/.claude/settings.json``.
    """
    if scope == "user":
        config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
        if config_dir:
            return Path(os.path.abspath(os.path.expanduser(config_dir))) / "settings.json"
        home = os.environ.get("HOME") or str(Path.home())
        return Path(os.path.abspath(home)) / ".claude" / "settings.json"
    if scope not in SCOPES:
        raise InvalidInputError(f"unknown scope {scope!r}: expected one of {', '.join(SCOPES)}")
    base = Path(os.path.abspath(project_dir if project_dir is not None else os.getcwd()))
    name = "settings.json" if scope == "project" else "settings.local.json"
    return base / ".claude" / name


def _read(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """The file's raw bytes (None if absent) and its parsed settings object."""
    import orjson

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}
    except IsADirectoryError as exc:
        raise ConfigError(f"{path} is a directory, not a settings file", str(path)) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}", str(path), exc.errno) from exc
    text = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # tolerate a UTF-8 BOM
    if not text.strip():
        return raw, {}  # an empty file (``touch``) holds no settings yet
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed JSON: {exc}", str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a JSON object, not {_json_type(data)}", str(path)
        )
    return raw, data


def _dump(settings: dict[str, Any]) -> bytes:
    """2-space indented JSON with a trailing newline (what Claude Code itself writes)."""
    import orjson

    return orjson.dumps(settings, option=orjson.OPT_INDENT_2) + b"\n"


def _write_atomic(path: Path, data: bytes, expected: bytes | None) -> None:
    """Replace *path* with *data* so a reader sees the old or the new file, never half.

    Temp file in the same directory, fsync, rename over, fsync the directory. The mode
    of an existing file is kept. *expected* is what we read before computing *data*: if
    the file changed meanwhile (Claude Code writes settings too, e.g. ``/permissions``),
    we refuse rather than silently drop that change.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            try:
                current: bytes | None = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current != expected:
                raise ConflictError(f"{path} changed while it was being updated; run again")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}", str(path), exc.errno) from exc


def _apply(
    scope: str,
    project_dir: str | os.PathLike[str] | None,
    dry_run: bool,
    change: Any,
) -> tuple[Path, bool, dict[str, Any], dict[str, Any], bool]:
    # Write through a symlink (dotfile managers link ~/.claude/settings.json) instead of
    # replacing the link with a regular file.
    path = Path(os.path.realpath(settings_path(scope, project_dir)))
    raw, old = _read(path)
    new: dict[str, Any] = change(old)
    changed = _dump(new) != _dump(old)
    if changed and not dry_run:
        _write_atomic(path, _dump(new), raw)
    return path, changed, old, new, raw is not None


def _imports_claude_state(python: str) -> bool:
    """Whether *python* can import this package (run once, at install time)."""
    import subprocess

    try:
        r = subprocess.run(
            [python, "-I", "-c", f"import {HOT_MODULE}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def install_plan(
    scope: str, project_dir: str | os.PathLike[str] | None = None
) -> tuple[str, str, str]:
    """``(scope to write, command, why)`` for an install asked for *scope*.

    ``local`` and ``user`` settings are read on this machine only: they get
    :func:`hook_command`, this interpreter's absolute path (no shell, no lookup).

    ``project`` settings are committed and read on every clone, so they never name a path
    of this machine: they get :data:`PORTABLE_COMMAND`, which finds the project's
    ``.venv`` relative to ``$CLAUDE_PROJECT_DIR``, else ``claude-state`` on ``PATH``.
    Before writing it we check that it finds claude-state *here*; when it would not
    (claude-state lives in an environment outside the project and is not on ``PATH``),
    the machine-specific command goes to ``.claude/settings.local.json`` instead and the
    reason says so: a committed command that works nowhere would be worse than none.
    """
    if scope not in SCOPES:
        raise InvalidInputError(f"unknown scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if scope != "project":
        where = "your user settings" if scope == "user" else "the local settings"
        return (
            scope,
            hook_command(),
            f"{where} are not shared, so the hook runs this interpreter by its absolute path "
            f"({os.path.abspath(sys.executable)}): no shell lookup on the hot path",
        )
    base = os.path.abspath(project_dir if project_dir is not None else os.getcwd())
    venv_python = os.path.join(base, ".venv", "bin", "python")
    here = os.path.abspath(sys.executable)
    if os.access(venv_python, os.X_OK):
        if _imports_claude_state(venv_python):
            return (
                "project",
                PORTABLE_COMMAND,
                "the project's .venv has claude-state: the committed settings run "
                '"$CLAUDE_PROJECT_DIR"/.venv/bin/python, which works on every clone where '
                "the project's environment exists, and name no path of this machine",
            )
        # The committed command would pick this .venv and find no claude-state in it.
        return (
            "local",
            hook_command(),
            f"the project's .venv ({venv_python}) does not have claude-state, and the "
            "committed command would run it; until claude-state is installed there "
            f"(.venv/bin/pip install claude-state), this machine's path ({here}) goes to "
            ".claude/settings.local.json, which is not committed",
        )
    import shutil

    on_path = shutil.which("claude-state")
    if on_path:
        return (
            "project",
            PORTABLE_COMMAND,
            f"claude-state is on PATH here ({on_path}) and the project has no .venv with it: "
            "the committed settings find it through PATH (or a project .venv, when one "
            "exists), and name no path of this machine",
        )
    return (
        "local",
        hook_command(),
        f"claude-state runs from {here}, outside the project's "
        ".venv, and is not on PATH: that path exists only on this machine, so the hooks go "
        "to .claude/settings.local.json (not committed) instead of .claude/settings.json",
    )


def install(
    scope: str = "project",
    project_dir: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    command: str | None = None,
) -> InstallResult:
    """Merge claude-state's hooks into the settings file :func:`install_plan` picks.

    *command* overrides the planned command (same file). The file is written only when
    its content changes, so a second run leaves it byte-for-byte identical; ``dry_run``
    computes the result and writes nothing. A malformed file raises
    :class:`ConfigError` and is left untouched. When the project settings are written,
    our entries in the local settings are removed (both files are read, so both
    commands would run and record every event twice); that file is otherwise untouched.
    """
    if scope == "project":
        # Refuse a malformed project file even when the hooks go to the local file:
        # the user asked for the project settings, and Claude Code reads both.
        _read(Path(os.path.realpath(settings_path("project", project_dir))))
    target, planned, reason = install_plan(scope, project_dir)
    cmd = command if command is not None else planned
    path, changed, _old, new, _ = _apply(
        target, project_dir, dry_run, lambda s: merge_hooks(s, cmd)
    )
    removed: Path | None = None
    if target == "project":
        local = Path(os.path.realpath(settings_path("local", project_dir)))
        try:
            has_ours = bool(_events_with_ours(_read(local)[1]))
        except ClaudeStateError:
            has_ours = False  # not ours to judge: Claude Code will report a broken file
        if has_ours:
            _apply("local", project_dir, dry_run, remove_hooks)
            removed = local
    return InstallResult(path, changed, new, EVENTS, target, reason, cmd, removed)


def uninstall(
    scope: str = "project",
    project_dir: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
) -> InstallResult:
    """Remove claude-state's hooks (and only those) from the settings file for *scope*.

    A missing file is not an error: there is nothing to remove and nothing is created.
    ``project`` also removes ours from the local settings, where a project install puts
    them when it cannot write a portable command (:func:`install_plan`); that file is
    reported in ``removed_from``.
    """
    path, changed, old, new, _ = _apply(scope, project_dir, dry_run, remove_hooks)
    removed: Path | None = None
    if scope == "project":
        local = Path(os.path.realpath(settings_path("local", project_dir)))
        try:
            if _events_with_ours(_read(local)[1]):
                _apply("local", project_dir, dry_run, remove_hooks)
                removed = local
        except ClaudeStateError:
            pass  # a broken local file is not ours to judge
    return InstallResult(path, changed, new, _events_with_ours(old), scope, removed_from=removed)
