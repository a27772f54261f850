"""Who owns a session, and is that process still the same one?

A lease names its owner by pid, but a pid alone proves nothing: the owner may have died
and the kernel may have handed its pid to an unrelated process, or the machine may have
rebooted. So an owner is identified by ``(pid, start-time token, boot id, host, pid
namespace)`` (``docs/ARCHITECTURE.md``, "Sessions, leases, crashes").

This module runs on the hook's ``SessionStart`` path, so on Linux it reads ``/proc``
directly and never imports :mod:`psutil` (about 35 ms); psutil is imported lazily, inside
functions, only where ``/proc`` does not exist (macOS, the BSDs, Windows). It also avoids
:mod:`socket` (the host name comes from :func:`os.uname`, which is what ``gethostname(2)``
returns on POSIX).

**The start-time token.** :func:`process_start_token` returns an opaque string compared
only for equality:

* ``"ticks:<n>"`` on Linux: field 22 of ``/proc/<pid>/stat``, the start time in clock
  ticks since boot, verbatim. It is an integer the kernel never changes for a process, so
  two reads of the same process are byte-identical. Converting it to wall-clock seconds
  (``btime + ticks / CLK_TCK``, what ``psutil.create_time()`` does) would make it depend
  on ``btime``, which the kernel recomputes from the wall clock and which shifts when NTP
  steps the clock: a live owner could then look like a reused pid. Ticks since boot only
  mean something within one boot, which is why a lease also records the boot id.
* ``"ctime:<repr(float)>"`` elsewhere: ``psutil.Process(pid).create_time()``, which on
  macOS/BSD/Windows is read from a value the kernel stores once at process creation;
  ``repr`` round-trips the float exactly.

Tokens with different schemes are not comparable (callers treat that as "unknown").
:func:`process_start_time` gives approximate epoch seconds for display only.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from claude_state.errors import InvalidInputError, NotFoundError

__all__ = [
    "AGENT_SOURCE_ENV",
    "AGENT_SOURCE_ANCESTRY",
    "AGENT_SOURCE_FALLBACK",
    "AGENT_SOURCE_PPID",
    "SKIP_NAMES",
    "TOKEN_CTIME",
    "TOKEN_TICKS",
    "ProcessIdentity",
    "ProcessInfo",
    "StatFields",
    "boot_id",
    "default_is_agent",
    "find_agent_pid",
    "find_orphans",
    "hostname",
    "iter_ancestors",
    "kill_orphans",
    "parse_stat",
    "pid_alive",
    "pid_namespace",
    "process_start_time",
    "process_start_token",
    "read_process_info",
    "same_boot",
]

#: ``find_agent_pid`` sources: where the returned pid came from.
AGENT_SOURCE_ENV = "env"
AGENT_SOURCE_ANCESTRY = "ancestry"
AGENT_SOURCE_FALLBACK = "ancestry-fallback"
AGENT_SOURCE_PPID = "ppid-fallback"

#: Token scheme prefixes (see the module docstring).
TOKEN_TICKS = "ticks:"
TOKEN_CTIME = "ctime:"

#: Boot-id prefix used where there is no kernel boot id (psutil boot time, whole seconds).
BOOT_BTIME = "btime:"

#: Process names that are never the agent: shells and exec wrappers that sit between
#: Claude Code and the hook (shell-form hooks run under ``sh -c``; users add ``env``,
#: ``timeout``, ``nice``, ``uv run``...). Matched against both ``comm`` and the basename
#: of the executable, because a ``#!/bin/bash`` script's ``comm`` is the script's name.
SKIP_NAMES = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "zsh",
        "fish",
        "ksh",
        "mksh",
        "env",
        "timeout",
        "nice",
        "nohup",
        "stdbuf",
        "setsid",
        "uv",
        "uvx",
    }
)

_MAX_DEPTH = 64  # ancestry walks stop here: a real chain is a handful of processes

# -- platform probes (cached) ---------------------------------------------------------------

_cache: dict[str, str | bool | None] = {}


def _have_proc() -> bool:
    """True when a Linux-style procfs is mounted (the fast path)."""
    have = _cache.get("have_proc")
    if have is None:
        have = os.path.exists("/proc/self/stat")
        _cache["have_proc"] = have
    return bool(have)


def boot_id() -> str:
    """An id that changes at every boot of this machine (cached for the process).

    Linux: ``/proc/sys/kernel/random/boot_id``, a random UUID per boot. Elsewhere:
    ``"btime:<int seconds>"`` from ``psutil.boot_time()``; that value is derived from the
    wall clock and may move by a second, which :func:`same_boot` tolerates. Returns ``""``
    when neither is available (callers then rely on the start-time token alone).
    """
    cached = _cache.get("boot_id")
    if isinstance(cached, str):
        return cached
    value = ""
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            value = f.read().strip().decode("ascii", "replace")
    except OSError:
        try:
            import psutil

            value = f"{BOOT_BTIME}{int(round(psutil.boot_time()))}"
        except Exception:  # psutil missing or the platform refuses: boot id unknown
            value = ""
    _cache["boot_id"] = value
    return value


def same_boot(a: str, b: str) -> bool:
    """Whether two boot ids name the same boot.

    Kernel boot ids must match exactly. ``btime:`` ids (no kernel boot id) match within
    one second, because they are recomputed from the wall clock at each read; declaring a
    live owner "rebooted" over a rounding step would break the first rule of leases.
    Unknown (empty) ids are treated as the same boot: the start-time token still guards.
    """
    if not a or not b or a == b:
        return True
    if a.startswith(BOOT_BTIME) and b.startswith(BOOT_BTIME):
        try:
            return abs(int(a[len(BOOT_BTIME) :]) - int(b[len(BOOT_BTIME) :])) <= 1
        except ValueError:
            return False
    return False


def hostname() -> str:
    """This machine's host name (cached).

    :func:`os.uname` returns the same value as ``socket.gethostname()`` on POSIX without
    importing :mod:`socket` (a few ms on the hook path).
    """
    cached = _cache.get("hostname")
    if isinstance(cached, str):
        return cached
    try:
        value = os.uname().nodename
    except AttributeError:  # Windows
        import socket

        value = socket.gethostname()
    _cache["hostname"] = value
    return value


def pid_namespace() -> str | None:
    """This process's pid namespace (``"pid:[4026531836]"``), or None where unknown.

    Two processes can only probe each other's pids when they share a pid namespace:
    containers on one host share the boot id but not the pids.
    """
    if "pid_ns" in _cache:
        cached = _cache["pid_ns"]
        return cached if isinstance(cached, str) else None
    try:
        value: str | None = os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        value = None
    _cache["pid_ns"] = value
    return value


# -- /proc/<pid>/stat --------------------------------------------------------------------


class StatFields:
    """The fields of ``/proc/<pid>/stat`` this module needs.

    A plain slotted class rather than a dataclass: building a frozen dataclass costs about
    1 ms of import time, and this record never leaves the module's fast path.
    """

    __slots__ = ("pid", "comm", "state", "ppid", "starttime")

    def __init__(self, pid: int, comm: str, state: str, ppid: int, starttime: int) -> None:
        self.pid = pid
        self.comm = comm
        self.state = state
        self.ppid = ppid
        self.starttime = starttime

    def __repr__(self) -> str:
        return (
            f"StatFields(pid={self.pid}, comm={self.comm!r}, state={self.state!r}, "
            f"ppid={self.ppid}, starttime={self.starttime})"
        )


def parse_stat(data: bytes | str) -> StatFields:
    """Parse one ``/proc/<pid>/stat`` line.

    ``comm`` (field 2) is the process name in parentheses and may itself contain spaces
    and parentheses (``"1 (a) b) (c) S 0 ..."``), so the line is split at the first ``(``
    and the *last* ``)``; the numbered fields after it start at field 3 (state).

    :raises InvalidInputError: when the line is not a stat line.
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    open_at = raw.find(b"(")
    close_at = raw.rfind(b")")
    if open_at < 0 or close_at < open_at:
        raise InvalidInputError("malformed /proc stat line: no (comm)")
    rest = raw[close_at + 1 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3]; starttime is field 22.
    if len(rest) < 20:
        raise InvalidInputError("malformed /proc stat line: too few fields")
    try:
        return StatFields(
            pid=int(raw[:open_at]),
            comm=raw[open_at + 1 : close_at].decode("utf-8", "replace"),
            state=rest[0].decode("ascii", "replace"),
            ppid=int(rest[1]),
            starttime=int(rest[19]),
        )
    except ValueError as exc:
        raise InvalidInputError(f"malformed /proc stat line: {exc}") from None


def _read_stat(pid: int) -> StatFields | None:
    """The parsed stat of *pid*, or None when it does not exist (or cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return parse_stat(data)
    except InvalidInputError:
        return None


def _valid_pid(pid: object) -> bool:
    # bool is an int subclass; pid 0 and negatives address process groups in kill(2).
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31


# -- liveness and start time --------------------------------------------------------------


def pid_alive(pid: int) -> bool | None:
    """Whether *pid* names a running process: True, False, or None when it can't be told.

    ``kill(pid, 0)`` sends nothing but checks the pid: ``ESRCH`` means gone,
    ``EPERM`` means it exists and belongs to another user (alive). A zombie (exited,
    not yet reaped by its parent) still answers ``kill`` but runs no code, so it counts
    as dead. ``pid <= 0`` is False (those values address process groups). On Windows
    ``os.kill`` would terminate the process, so psutil is used there.
    """
    if not _valid_pid(pid):
        return False
    if sys.platform == "win32":  # pragma: no cover - not a supported CI platform
        try:
            import psutil

            return bool(psutil.pid_exists(pid))
        except Exception:
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    if _have_proc():
        st = _read_stat(pid)
        if st is not None:
            return st.state == "Z"
        # Unreadable although kill() just succeeded: it exited in between, or /proc hides
        # it (hidepid, another namespace's procfs). Only a second kill() can say "gone";
        # otherwise stay on the safe side and call it alive.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    try:
        import psutil

        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except Exception:  # NoSuchProcess -> the caller's next probe sees it gone
        return False


def process_start_token(pid: int) -> str | None:
    """The start-time token of *pid* (see the module docstring), or None.

    None means the process does not exist, is a zombie, or its start time cannot be read
    (psutil ``AccessDenied``); :func:`pid_alive` tells these apart.
    """
    if not _valid_pid(pid):
        return None
    if _have_proc():
        st = _read_stat(pid)
        if st is None or st.state == "Z":
            return None
        return f"{TOKEN_TICKS}{st.starttime}"
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{TOKEN_CTIME}{proc.create_time()!r}"
    except Exception:  # NoSuchProcess, AccessDenied, psutil missing
        return None


def process_start_time(pid: int) -> float | None:
    """Approximate start time of *pid* in epoch seconds, for display; None if gone.

    Not for comparisons: on Linux it depends on ``btime``, which follows clock steps.
    Use :func:`process_start_token` to tell processes apart.
    """
    token = process_start_token(pid)
    if token is None:
        return None
    if token.startswith(TOKEN_CTIME):
        return float(token[len(TOKEN_CTIME) :])
    return _ticks_to_epoch(int(token[len(TOKEN_TICKS) :]))


# -- identity ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process named so that a later check can tell it from a pid reuse or a reboot.

    ``start_time`` is the opaque token of :func:`process_start_token` (None when it could
    not be read); ``boot_id``, ``host`` and ``pid_ns`` say where the pid is meaningful.
    """

    pid: int
    start_time: str | None
    boot_id: str
    host: str
    pid_ns: str | None = None

    @classmethod
    def current(cls, pid: int | None = None) -> ProcessIdentity:
        """The identity of *pid* (default: this process) on this machine.

        :raises NotFoundError: when *pid* does not name a live process.
        """
        if pid is None:
            pid = os.getpid()
        if pid_alive(pid) is False:
            raise NotFoundError("process", str(pid))
        return cls(
            pid=pid,
            start_time=process_start_token(pid),
            boot_id=boot_id(),
            host=hostname(),
            pid_ns=pid_namespace(),
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
            "host": self.host,
            "pid_ns": self.pid_ns,
        }

    @classmethod
    def from_dict(cls, data: object) -> ProcessIdentity:
        """Rebuild an identity from :meth:`to_dict` output; unknown keys are ignored.

        :raises InvalidInputError: when a field is missing or has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"process identity must be an object, not {_tn(data)}")
        pid = _get_int(data, "pid", "process identity")
        if not _valid_pid(pid):
            raise InvalidInputError(f"process identity: invalid pid {pid!r}")
        return cls(
            pid=pid,
            start_time=_get_opt_str(data, "start_time", "process identity"),
            boot_id=_get_str(data, "boot_id", "process identity"),
            host=_get_str(data, "host", "process identity"),
            pid_ns=_get_opt_str(data, "pid_ns", "process identity"),
        )


def _tn(value: object) -> str:
    return type(value).__name__


def _check(data: Mapping[object, object], key: str, typ: type, what: str) -> object:
    """``data[key]``, checked to be a *typ* (``bool`` does not pass as ``int``)."""
    if key not in data:
        raise InvalidInputError(f"{what}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise InvalidInputError(f"{what}: field {key!r} must be {typ.__name__}, not {_tn(value)}")
    return value


def _get_int(data: Mapping[object, object], key: str, what: str) -> int:
    value = _check(data, key, int, what)
    assert isinstance(value, int)
    return value


def _get_str(data: Mapping[object, object], key: str, what: str) -> str:
    value = _check(data, key, str, what)
    assert isinstance(value, str)
    return value


def _get_opt_str(data: Mapping[object, object], key: str, what: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{what}: field {key!r} must be a string or null")
    return value


# -- finding the agent -------------------------------------------------------------------


class ProcessInfo:
    """What the ancestry walk knows of one process.

    ``exe`` is the resolved executable path (None when unreadable, e.g. another user's
    process); ``cmdline`` may be empty for the same reason. A plain slotted class (not a
    dataclass) to keep import time down on the ``SessionStart`` path.
    """

    __slots__ = ("pid", "ppid", "name", "exe", "cmdline")

    def __init__(
        self,
        pid: int,
        ppid: int,
        name: str,
        exe: str | None = None,
        cmdline: tuple[str, ...] = (),
    ) -> None:
        self.pid = pid
        self.ppid = ppid
        self.name = name
        self.exe = exe
        self.cmdline = cmdline

    def __repr__(self) -> str:
        return (
            f"ProcessInfo(pid={self.pid}, ppid={self.ppid}, name={self.name!r}, "
            f"exe={self.exe!r}, cmdline={self.cmdline!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessInfo):
            return NotImplemented
        return (self.pid, self.ppid, self.name, self.exe, self.cmdline) == (
            other.pid,
            other.ppid,
            other.name,
            other.exe,
            other.cmdline,
        )

    __hash__ = None  # type: ignore[assignment]


def read_process_info(pid: int) -> ProcessInfo | None:
    """Read *pid*'s parent, name, executable and command line; None if it is gone.

    ``/proc`` fast path; psutil only where there is no ``/proc``.
    """
    if not _valid_pid(pid):
        return None
    if _have_proc():
        st = _read_stat(pid)
        if st is None:
            return None
        try:
            exe: str | None = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
            args = raw.rstrip(b"\0").split(b"\0") if raw else []
            cmdline = tuple(a.decode("utf-8", "replace") for a in args)
        except OSError:
            cmdline = ()
        return ProcessInfo(pid=pid, ppid=st.ppid, name=st.comm, exe=exe, cmdline=cmdline)
    try:
        import psutil

        proc = psutil.Process(pid)
        with proc.oneshot():
            ppid, name = proc.ppid(), proc.name()
            try:
                exe = proc.exe() or None
            except Exception:
                exe = None
            try:
                cmdline = tuple(proc.cmdline())
            except Exception:
                cmdline = ()
        return ProcessInfo(pid=pid, ppid=ppid, name=name, exe=exe, cmdline=cmdline)
    except Exception:  # NoSuchProcess, AccessDenied, psutil missing
        return None


def iter_ancestors(
    start_pid: int, read: Callable[[int], ProcessInfo | None] = read_process_info
) -> Iterator[ProcessInfo]:
    """Yield *start_pid* and then its ancestors, nearest first.

    Stops at pid 0, at a process that can't be read, at a cycle (a pid reused while we
    walk), and after a fixed depth.
    """
    seen: set[int] = set()
    pid = start_pid
    while pid > 0 and pid not in seen and len(seen) < _MAX_DEPTH:
        seen.add(pid)
        info = read(pid)
        if info is None:
            return
        yield info
        pid = info.ppid


def _basename(path: str | None) -> str:
    if not path:
        return ""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].removesuffix(" (deleted)")


def _is_python_name(name: str) -> bool:
    return name.lower().startswith(("python", "pypy"))


def _is_version_string(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and all(p.isdigit() for p in parts)


_NODE_NAMES = frozenset({"node", "nodejs", "bun", "deno"})


def default_is_agent(info: ProcessInfo) -> bool:
    """Whether *info* looks like the Claude Code agent process.

    * the name or executable is ``claude`` (npm shim, native build);
    * a native build whose ``comm`` or executable name is a version string such as
      ``2.1.240`` (installed as ``~/.local/share/claude/versions/2.1.240``), matched by
      its executable path containing ``claude``;
    * ``node``/``bun`` running a script whose path contains ``claude`` (``cli.js`` of
      ``@anthropic-ai/claude-code``);
    * any other executable under a path containing ``claude``, unless it is a shell,
      wrapper or Python: a Python interpreter inside ``~/.claude/plugins/data/...`` runs
      the hook, it is not the agent.
    """
    name = info.name
    exe_base = _basename(info.exe)
    if "claude" in (name.lower(), exe_base.lower()):
        return True
    exe_lower = (info.exe or "").lower()
    if _is_version_string(name) or _is_version_string(exe_base):
        return "claude" in exe_lower
    if exe_base.lower() in _NODE_NAMES or name.lower() in _NODE_NAMES:
        return any("claude" in arg.lower() for arg in info.cmdline[1:4])
    if "claude" not in exe_lower:
        return False
    base = exe_base.lower()
    return not (base in SKIP_NAMES or _is_python_name(base) or base.startswith("claude-state"))


def _own_interpreter() -> str:
    cached = _cache.get("own_exe")
    if isinstance(cached, str):
        return cached
    value = os.path.realpath(sys.executable) if sys.executable else ""
    _cache["own_exe"] = value
    return value


def _is_skipped(info: ProcessInfo) -> bool:
    """Shells, exec wrappers, and the interpreter that runs this hook."""
    exe_base = _basename(info.exe)
    if info.name in SKIP_NAMES or exe_base in SKIP_NAMES:
        return True
    if _is_python_name(exe_base) or (not info.exe and _is_python_name(info.name)):
        own = _own_interpreter()
        return not info.exe or not own or os.path.realpath(info.exe) == own
    return False


def _env_pid(env: Mapping[str, str]) -> int | None:
    raw = env.get("CLAUDE_PID", "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    pid = int(raw)
    if pid <= 1 or pid_alive(pid) is False:
        return None
    return pid


def find_agent_pid(
    env: Mapping[str, str] | None = None,
    *,
    is_agent: Callable[[ProcessInfo], bool] = default_is_agent,
    start_pid: int | None = None,
    read: Callable[[int], ProcessInfo | None] = read_process_info,
) -> tuple[int, str]:
    """The pid of the process that owns this Claude Code session, and where it came from.

    The owner is the agent, not the short-lived hook process (nor the ``sh -c`` between
    them in shell-form hooks, whose presence depends on the shell's exec optimisation):

    1. ``$CLAUDE_PID`` (Claude Code 2.1.214+) when it is a decimal pid > 1 of a live
       process -> ``(pid, "env")``. Garbage or a dead pid is ignored.
    2. Walking up from ``os.getppid()`` (or *start_pid*): the first ancestor for which
       *is_agent* is true -> ``"ancestry"``. Shells and wrappers (:data:`SKIP_NAMES`, this
       hook's own interpreter) are passed over.
    3. Else the nearest ancestor that is not skipped and not pid 1 -> ``"ancestry-fallback"``
       (pid 1 never exits, so a lease it owned would never go stale).
    4. Else ``(os.getppid(), "ppid-fallback")``.

    :param env: the environment (default ``os.environ``).
    :param is_agent: predicate recognising the agent; injectable for tests and for other
        harnesses.
    :param read: process reader, injectable to test the walk on a synthetic tree.
    """
    pid = _env_pid(os.environ if env is None else env)
    if pid is not None:
        return pid, AGENT_SOURCE_ENV
    first = os.getppid() if start_pid is None else start_pid
    fallback: int | None = None
    for info in iter_ancestors(first, read):
        if is_agent(info):
            return info.pid, AGENT_SOURCE_ANCESTRY
        if fallback is None and info.pid > 1 and not _is_skipped(info):
            fallback = info.pid
    if fallback is not None:
        return fallback, AGENT_SOURCE_FALLBACK
    return os.getppid(), AGENT_SOURCE_PPID


# -- what a dead agent left running --------------------------------------------------------

#: Environment variables that tie a process to a Claude Code session: Claude Code
#: exports them to the commands its agent runs (Bash tool, hooks), and children inherit
#: them.
SESSION_ENV = b"CLAUDE_CODE_SESSION_ID"
AGENT_PID_ENV = b"CLAUDE_PID"


def _read_environ(pid: int) -> dict[bytes, bytes] | None:
    """The initial environment of *pid* (``/proc/<pid>/environ``); None if unreadable
    (another user's process, gone, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    out: dict[bytes, bytes] = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key not in out:
            out[key] = value
    return out


def _ticks_to_epoch(ticks: int) -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return int(line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return None


def find_orphans(
    session_id: str, agent: ProcessIdentity | None, *, now: float | None = None
) -> tuple[list[dict[str, object]], str]:
    """Processes a dead agent of *session_id* left running, and how they were told apart.

    Returns ``(orphans, note)``; each orphan is ``{"pid", "command", "started_at",
    "age_seconds", "start_token", "evidence"}``. Never by name: a ``sleep 60`` or a dev
    server is named only on evidence that it belongs to *this* session's dead agent:

    1. **The environment it inherited.** Claude Code exports ``CLAUDE_CODE_SESSION_ID``
       and ``CLAUDE_PID`` to the commands its agent runs (read in 2.1.332's bundle: the
       Bash tool's and the hooks' environment get ``CLAUDECODE``,
       ``CLAUDE_CODE_SESSION_ID``, ``CLAUDE_PID``); every child of a Bash call inherits
       them, and ``/proc/<pid>/environ`` is the environment the
       process was started with (a process cannot rewrite what another one reads there).
       A process qualifies when it carries ``CLAUDE_CODE_SESSION_ID=<session_id>``, or
       ``CLAUDE_PID=<the dead agent's pid>`` and no other session id; and it started
       after the agent did (nothing of the session predates its agent).
    2. **Its tree was re-rooted.** A resumed session keeps its id, so a *live* agent of
       the same session (a second terminal) has children with the same environment. So
       the topmost qualifying ancestor of a candidate must now hang under pid 1 or a
       process that started *before* the dead agent: when a process dies, the kernel
       re-parents its children to pid 1 or the nearest subreaper *ancestor*, and an
       ancestor is always older than the agent; a live agent of the same session was
       started after the session began, so its tree never passes.

    Start times are compared as kernel ticks since boot, so only on Linux, for an agent
    that ran on this host in this boot. Elsewhere (no ``/proc``, another host, a reboot,
    an unreadable start time) nothing can be claimed, and *note* says so: the caller
    puts that in the plan instead of guessing.
    """
    if agent is None:
        return [], "no lease names the agent process: its processes cannot be identified"
    if agent.host != hostname() or not same_boot(agent.boot_id, boot_id()):
        return [], (
            f"the agent ran on {agent.host} (another host or boot): processes it left "
            "running cannot be seen from here"
        )
    if not _have_proc():
        return [], (
            "this platform has no /proc: the environment of other processes cannot be read, "
            "so processes the agent left running cannot be identified (none are named)"
        )
    token = agent.start_time or ""
    if not token.startswith(TOKEN_TICKS):
        return [], "the agent's start time is unknown: its processes cannot be told apart"
    agent_start = int(token[len(TOKEN_TICKS) :])
    if process_start_token(agent.pid) == token:
        return [], "the agent is alive: nothing is orphaned"
    sid = session_id.encode()
    apid = str(agent.pid).encode()
    skip = {os.getpid(), *(p.pid for p in iter_ancestors(os.getpid()))}
    stats: dict[int, StatFields] = {}
    marked: dict[int, str] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return [], "/proc cannot be listed: processes the agent left running are unknown"
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in skip:
            continue
        st = _read_stat(pid)
        if st is None or st.state == "Z" or st.starttime < agent_start:
            continue
        env = _read_environ(pid)
        if not env:
            continue
        stats[pid] = st
        env_sid = env.get(SESSION_ENV)
        if env_sid == sid:
            marked[pid] = f"environment CLAUDE_CODE_SESSION_ID={session_id}"
        elif env.get(AGENT_PID_ENV) == apid and env_sid is None:
            marked[pid] = f"environment CLAUDE_PID={agent.pid}"
    t = time.time() if now is None else now
    orphans: list[dict[str, object]] = []
    for pid in sorted(marked):
        top = stats[pid]
        seen = {pid}
        while top.ppid in marked and top.ppid not in seen:
            seen.add(top.ppid)
            top = stats[top.ppid]
        parent = top.ppid
        if parent > 1:
            pst = _read_stat(parent)
            if pst is None or pst.starttime >= agent_start:
                continue  # under a live process of the session's time: not orphaned
        info = read_process_info(pid)
        command = " ".join(info.cmdline) if info is not None and info.cmdline else stats[pid].comm
        started = _ticks_to_epoch(stats[pid].starttime)
        orphans.append(
            {
                "pid": pid,
                "command": command[:300],
                "started_at": started,
                "age_seconds": None if started is None else max(0.0, round(t - started, 1)),
                "start_token": f"{TOKEN_TICKS}{stats[pid].starttime}",
                "evidence": f"{marked[pid]}; its tree now hangs under pid {parent}, "
                "older than the agent (re-parented when the agent died)",
            }
        )
    note = (
        f"{len(orphans)} process(es) left running by agent pid {agent.pid}, identified by "
        "the session id (or agent pid) in their environment and a process tree re-parented "
        "when the agent died; never by name"
    )
    return orphans, note


def kill_orphans(
    orphans: list[dict[str, object]], *, grace: float = 2.0
) -> list[dict[str, object]]:
    """End the processes :func:`find_orphans` named: SIGTERM, then SIGKILL after *grace*.

    A pid is signalled only while it still carries the start token recorded when it was
    named, so a pid reused since by an unrelated process is never touched. Returns one
    ``{"pid", "result"}`` per orphan: ``terminated``, ``killed``, ``gone`` (exited
    before), ``reused`` (left alone) or ``refused: <error>``.
    """
    import signal

    results: dict[int, str] = {}
    sent: list[int] = []
    for o in orphans:
        pid, token = o.get("pid"), o.get("start_token")
        if not isinstance(pid, int) or not _valid_pid(pid):
            continue
        now_token = process_start_token(pid)
        if now_token is None:
            results[pid] = "gone"
        elif now_token != token:
            results[pid] = "reused"
        else:
            try:
                os.kill(pid, signal.SIGTERM)
                sent.append(pid)
            except ProcessLookupError:
                results[pid] = "gone"
            except OSError as exc:
                results[pid] = f"refused: {exc.strerror}"
    deadline = time.monotonic() + grace
    tokens = {o.get("pid"): o.get("start_token") for o in orphans}
    pending = list(sent)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if process_start_token(p) == tokens[p]]
        if pending:
            time.sleep(0.05)
    for pid in sent:
        if pid in pending and process_start_token(pid) == tokens[pid]:
            try:
                os.kill(pid, signal.SIGKILL)
                results[pid] = "killed"
            except ProcessLookupError:
                results[pid] = "terminated"
            except OSError as exc:
                results[pid] = f"refused: {exc.strerror}"
        else:
            results[pid] = "terminated"
    return [{"pid": p, "result": r} for p, r in results.items()]
