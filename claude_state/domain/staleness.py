"""Is a session lease still held? The verdict, from the lease alone and cheap probes.

The first rule (``docs/RELIABILITY.md`` §5) is that **a live owner is never declared
dead**; every doubt therefore resolves to "not stale". The rules
(``docs/ARCHITECTURE.md``, "Sessions, leases, crashes"):

* same machine, same boot, same pid namespace: the pid is probed. Gone (or a zombie)
  -> ``dead``; present with another start-time token -> ``pid_reused``; present with the
  same token, or present but unreadable (``EPERM``: another user's process) -> ``alive``;
* same host, another boot id -> ``rebooted`` (every process of that boot is gone);
* another host, or a pid namespace this process can't see into (a container sharing the
  host's boot id): pids mean nothing here, so only the heartbeat speaks. Older than the
  TTL -> ``remote_expired``, else ``remote_alive``;
* anything that can't be decided (the probe failed, tokens of different schemes, a lease
  recorded without a token) -> ``unknown``, which is not stale.

No file formats live here: the storage layer persists :class:`LeaseInfo` through
:meth:`LeaseInfo.to_dict` / :meth:`LeaseInfo.from_dict`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from claude_state.domain import procinfo
from claude_state.domain.procinfo import ProcessIdentity
from claude_state.errors import InvalidInputError
from claude_state.ids import validate_id

__all__ = [
    "DEFAULT_TTL",
    "HostInfo",
    "HostLike",
    "LeaseInfo",
    "Probe",
    "SystemProbe",
    "Verdict",
    "assess",
    "is_stale",
]

#: Seconds without a heartbeat after which a lease held from another host is expired.
DEFAULT_TTL = 120.0


class Verdict(StrEnum):
    """The state of a lease's owner, as far as this machine can tell."""

    ALIVE = "alive"
    DEAD = "dead"
    PID_REUSED = "pid_reused"
    REBOOTED = "rebooted"
    REMOTE_ALIVE = "remote_alive"
    REMOTE_EXPIRED = "remote_expired"
    UNKNOWN = "unknown"


_STALE = frozenset({Verdict.DEAD, Verdict.PID_REUSED, Verdict.REBOOTED, Verdict.REMOTE_EXPIRED})


def is_stale(verdict: Verdict | str) -> bool:
    """True when the owner is gone for good and the lease may be broken.

    ``unknown`` is not stale: breaking a lease on a guess could run two writers at once.
    """
    return verdict in _STALE


class Probe(Protocol):
    """How :func:`assess` looks at local processes; injectable so tests can fake any case."""

    def pid_alive(self, pid: int) -> bool | None:
        """True (alive, including owned by another user), False (gone/zombie), None."""
        ...

    def process_start_token(self, pid: int) -> str | None:
        """The start-time token of *pid*, or None when it can't be read."""
        ...


class SystemProbe:
    """The real probe: :func:`procinfo.pid_alive` and :func:`procinfo.process_start_token`."""

    def pid_alive(self, pid: int) -> bool | None:
        return procinfo.pid_alive(pid)

    def process_start_token(self, pid: int) -> str | None:
        return procinfo.process_start_token(pid)


SYSTEM_PROBE = SystemProbe()


class HostLike(Protocol):
    """Where a check runs: :class:`HostInfo` or a :class:`ProcessIdentity` both fit."""

    @property
    def host(self) -> str: ...

    @property
    def boot_id(self) -> str: ...

    @property
    def pid_ns(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HostInfo:
    """This machine, boot and pid namespace."""

    host: str
    boot_id: str
    pid_ns: str | None = None

    @classmethod
    def current(cls) -> HostInfo:
        """The running process's host name, boot id and pid namespace (all cached)."""
        return cls(procinfo.hostname(), procinfo.boot_id(), procinfo.pid_namespace())


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a session, since when, and under which fencing epoch.

    ``heartbeat_at`` and ``acquired_at`` are float epoch seconds; ``ttl`` only matters
    for owners this machine cannot probe (another host or pid namespace).
    """

    session_id: str
    owner: ProcessIdentity
    epoch: int
    heartbeat_at: float
    acquired_at: float
    ttl: float = DEFAULT_TTL

    def with_heartbeat(self, now: float | None = None) -> LeaseInfo:
        """The same lease with a fresh heartbeat."""
        return replace(self, heartbeat_at=time.time() if now is None else now)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "session_id": self.session_id,
            "owner": self.owner.to_dict(),
            "epoch": self.epoch,
            "heartbeat_at": self.heartbeat_at,
            "acquired_at": self.acquired_at,
            "ttl": self.ttl,
        }

    @classmethod
    def from_dict(cls, data: object) -> LeaseInfo:
        """Rebuild a lease from :meth:`to_dict` output; unknown keys are ignored.

        :raises InvalidInputError: a missing field, a wrong type, a bad session id, a
            negative epoch, a non-finite time or a non-positive TTL.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"lease must be an object, not {type(data).__name__}")
        session_id = data.get("session_id")
        validate_id(session_id, "session id")
        assert isinstance(session_id, str)
        if "owner" not in data:
            raise InvalidInputError("lease: missing field 'owner'")
        owner = ProcessIdentity.from_dict(data["owner"])
        epoch = data.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise InvalidInputError(f"lease: field 'epoch' must be an int >= 0, not {epoch!r}")
        ttl = _number(data, "ttl", DEFAULT_TTL)
        if ttl <= 0:
            raise InvalidInputError(f"lease: field 'ttl' must be > 0, not {ttl!r}")
        return cls(
            session_id=session_id,
            owner=owner,
            epoch=epoch,
            heartbeat_at=_number(data, "heartbeat_at"),
            acquired_at=_number(data, "acquired_at"),
            ttl=ttl,
        )


def _number(data: Mapping[object, object], key: str, default: float | None = None) -> float:
    """A finite int or float field as a float (``bool`` rejected)."""
    if key not in data:
        if default is not None:
            return default
        raise InvalidInputError(f"lease: missing field {key!r}")
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInputError(f"lease: field {key!r} must be a number, not {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise InvalidInputError(f"lease: field {key!r} must be finite, not {value!r}")
    return result


def _same_machine(owner: ProcessIdentity, here: HostLike) -> bool:
    """Whether *owner*'s host is this one.

    Equal host names, or (host renamed, e.g. by DHCP) an identical kernel boot id and pid
    namespace: a random 128-bit boot id plus a namespace inode can't be another machine.
    """
    if owner.host == here.host:
        return True
    return bool(
        owner.boot_id
        and owner.boot_id == here.boot_id
        and not owner.boot_id.startswith(procinfo.BOOT_BTIME)
        and owner.pid_ns
        and owner.pid_ns == here.pid_ns
    )


def _by_heartbeat(lease: LeaseInfo, now: float) -> Verdict:
    # A heartbeat in the future (clock skew between hosts) counts as fresh.
    if now - lease.heartbeat_at > lease.ttl:
        return Verdict.REMOTE_EXPIRED
    return Verdict.REMOTE_ALIVE


def _scheme(token: str) -> str:
    return token.split(":", 1)[0]


def assess(
    lease: LeaseInfo,
    *,
    here: HostLike | None = None,
    now: float | None = None,
    probe: Probe = SYSTEM_PROBE,
) -> Verdict:
    """Decide whether *lease*'s owner still holds it (see the module docstring).

    :param here: this machine (default :meth:`HostInfo.current`).
    :param now: epoch seconds, for heartbeat ages (default :func:`time.time`).
    :param probe: process probes (default: the real ones).
    """
    if here is None:
        here = HostInfo.current()
    if now is None:
        now = time.time()
    owner = lease.owner
    if not _same_machine(owner, here):
        return _by_heartbeat(lease, now)
    if not procinfo.same_boot(owner.boot_id, here.boot_id):
        return Verdict.REBOOTED
    if owner.pid_ns and here.pid_ns and owner.pid_ns != here.pid_ns:
        # Same kernel, another pid namespace: that pid number names another process here.
        return _by_heartbeat(lease, now)

    alive = probe.pid_alive(owner.pid)
    if alive is None:
        return Verdict.UNKNOWN
    if not alive:
        return Verdict.DEAD
    token = probe.process_start_token(owner.pid)
    if token is None:
        # Alive a moment ago but unreadable: it exited in between, or it is not ours to
        # read. Ask again so a death is not reported as "alive".
        return Verdict.ALIVE if probe.pid_alive(owner.pid) is not False else Verdict.DEAD
    if owner.start_time is None or _scheme(owner.start_time) != _scheme(token):
        return Verdict.UNKNOWN
    if token != owner.start_time:
        return Verdict.PID_REUSED
    return Verdict.ALIVE
