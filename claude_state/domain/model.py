"""The workflow document: typed dataclasses, their JSON form, and schema migration.

A :class:`Workflow` is the unit the storage layer snapshots, the WAL replays onto and
checkpoints freeze. It is plain data on purpose: every change goes through
:func:`claude_state.domain.ops.apply_op`, so this module only describes the shape, reads
it back from older documents and answers questions about it (progress, current step).

``to_dict`` returns fresh plain dicts/lists (JSON-able, safe to hand to orjson) and
``from_dict`` validates what it reads, because documents outlive the code that wrote them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude_state.errors import InvalidInputError, NotFoundError

#: Version of the document layout written by :meth:`Workflow.to_dict`.
SCHEMA_VERSION = 1

WORKFLOW_STATUSES = ("idle", "running", "paused", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped")
#: Step statuses that let dependents start.
DONE_STATUSES = frozenset({"completed", "skipped"})
#: Step statuses that end an attempt (they set ``finished_at``).
FINISHED_STATUSES = frozenset({"completed", "failed", "skipped"})

#: Bounds that keep documents (and every snapshot of them) small whatever runs for long.
MAX_HISTORY = 200
MAX_TOOL_CALLS = 50
_MAX_JSON_DEPTH = 100


def json_copy(value: Any, where: str = "value", _depth: int = 0) -> Any:
    """Return a deep copy of *value* after checking it is plain JSON.

    Only ``dict`` (str keys), ``list``, ``str``, 64-bit ``int``, finite ``float``, ``bool`` and
    ``None`` are accepted: anything else (tuples, NaN, objects) would not round-trip
    through the stored bytes identically, and replay must reproduce documents exactly.

    :raises InvalidInputError: naming *where* when *value* is not plain JSON.
    """
    if _depth > _MAX_JSON_DEPTH:
        raise InvalidInputError(f"{where}: nested deeper than {_MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, (str, bool)):  # noqa: UP038 - a union is built per call
        return value
    if isinstance(value, int):
        # orjson (the codec storage uses) writes 64-bit integers only.
        if not -(2**63) <= value < 2**64:
            raise InvalidInputError(f"{where}: integer {value} is out of the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value!r} is not a JSON number")
        return value
    if isinstance(value, list):
        return [json_copy(v, where, _depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{where}: object key {k!r} is not a string")
            out[k] = json_copy(v, where, _depth + 1)
        return out
    raise InvalidInputError(f"{where}: {type(value).__name__} is not a JSON value")


# -- field readers used by from_dict ------------------------------------------------------


def _keep(value: Any, where: str = "value") -> Any:
    """The no-copy twin of :func:`json_copy`, for documents the store itself just
    parsed (orjson output is fresh, plain JSON and owned by nobody else)."""
    return value


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise InvalidInputError(f"{where}: missing {key!r}")
    value = d[key]
    # bool is an int subclass; a JSON true is never a count or a number here.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError(f"{where}: {key!r} has the wrong type")
    return value


def _opt(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if d.get(key) is None:
        return None
    return _get(d, key, kind, where)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: expected an object")
    return value


@dataclass
class Step:
    """One node of the workflow DAG and everything recorded about its attempts."""

    id: str
    name: str
    deps: list[str] = field(default_factory=list)
    status: str = "pending"
    attempts: int = 0
    max_retries: int = 0
    timeout: float | None = None
    agent: str | None = None
    #: Any JSON value; large ones arrive as an opaque ``{"$blob": hex, "size": n}``.
    output: Any = None
    error: str | None = None
    agent_state: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exhausted(self) -> bool:
        """True when the step failed and has used every attempt it is allowed."""
        return self.status == "failed" and self.attempts >= self.max_retries + 1

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """A fresh plain-JSON dict of this step.

        :param copy: deep-copy nested values. With False, the containers that ops
            change in place (``tool_calls``) are still copied, but values (the output,
            the agent state) are shared: ops only ever replace them, never mutate them,
            so the dict stays a faithful picture of this moment (the store serialises it,
            checkpoints keep it as their chain head) at no deep-copy cost.
        """
        cp = json_copy if copy else _keep
        return {
            "id": self.id,
            "name": self.name,
            "deps": list(self.deps),
            "status": self.status,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "agent": self.agent,
            "output": cp(self.output),
            "error": self.error,
            "agent_state": cp(self.agent_state),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "tool_calls": cp(self.tool_calls) if copy else list(self.tool_calls),
        }

    @classmethod
    def from_dict(cls, d: Any, *, trusted: bool = False) -> Step:
        """Read a step written by :meth:`to_dict` (current schema only).

        :param trusted: *d* was just parsed from a verified file by the store: field
            types are still checked, nested values are used without a deep copy.
        :raises InvalidInputError: on a missing field, a wrong type or an unknown status.
        """
        if trusted and type(d) is dict:
            # Fast path: a checksummed snapshot the store wrote itself. Construct
            # directly; any surprise (a missing key, a bad status) falls through to the
            # validating path below, which names the problem.
            try:
                if d["status"] in STEP_STATUSES and type(d["deps"]) is list:
                    return cls(
                        d["id"],
                        d["name"],
                        d["deps"],
                        d["status"],
                        d["attempts"],
                        d["max_retries"],
                        d["timeout"],
                        d["agent"],
                        d.get("output"),
                        d["error"],
                        d["agent_state"],
                        d["started_at"],
                        d["finished_at"],
                        d["tool_calls"],
                    )
            except KeyError:
                pass
        cp = _keep if trusted else json_copy
        d = _obj(d, "step")
        where = f"step {d.get('id')!r}"
        deps = _get(d, "deps", list, where)
        if not all(isinstance(x, str) for x in deps):
            raise InvalidInputError(f"{where}: 'deps' must be a list of strings")
        status = _get(d, "status", str, where)
        if status not in STEP_STATUSES:
            raise InvalidInputError(f"{where}: unknown status {status!r}")
        timeout = _opt(d, "timeout", (int, float), where)
        calls = _get(d, "tool_calls", list, where)
        if not all(isinstance(c, dict) for c in calls):
            raise InvalidInputError(f"{where}: 'tool_calls' must be a list of objects")
        return cls(
            id=_get(d, "id", str, where),
            name=_get(d, "name", str, where),
            deps=list(deps),
            status=status,
            attempts=_get(d, "attempts", int, where),
            max_retries=_get(d, "max_retries", int, where),
            timeout=None if timeout is None else float(timeout),
            agent=_opt(d, "agent", str, where),
            output=cp(d.get("output"), f"{where} output"),
            error=_opt(d, "error", str, where),
            agent_state=cp(_get(d, "agent_state", dict, where), where),
            started_at=_opt(d, "started_at", str, where),
            finished_at=_opt(d, "finished_at", str, where),
            tool_calls=cp(calls, where),
        )


def new_metrics() -> dict[str, Any]:
    """The empty metrics record of a fresh workflow."""
    return {"transitions": 0, "failures": 0, "steps": {}}


@dataclass
class Workflow:
    """A durable workflow: ordered steps, key/value data, owner, history and metrics."""

    id: str
    name: str
    created_at: str
    updated_at: str
    steps: list[Step] = field(default_factory=list)
    status: str = "idle"
    data: dict[str, Any] = field(default_factory=dict)
    #: ``{"session_id": str, "epoch": int}`` of the session driving it, or None.
    owner: dict[str, Any] | None = None
    parent_id: str | None = None
    #: Last :data:`MAX_HISTORY` events: ``{"at", "event", "step"?, "from"?, "to"?, "detail"?}``.
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=new_metrics)
    #: Ids of the currently finished steps in the order they finished. Kept separately
    #: from the (bounded) history so ``rollback --steps N`` works however long it ran.
    finish_order: list[str] = field(default_factory=list)
    #: Number of ops applied; lets storage and checkpoints tell two versions apart.
    revision: int = 0
    schema: int = SCHEMA_VERSION

    # -- queries ---------------------------------------------------------------------

    def step(self, step_id: str) -> Step:
        """The step called *step_id*.

        :raises NotFoundError: ``("step", step_id)`` when there is none.
        """
        # An index built on first use: a step op looks its step up once and this runs
        # on every durable step update; a scan of a large workflow touches every step.
        # Steps are fixed when a workflow is built, so the index is rebuilt only if the
        # list itself is replaced or resized (and a hit is checked).
        cached = self.__dict__.get("_step_index")
        steps = self.steps
        if cached is None or cached[0] is not steps or cached[1] != len(steps):
            cached = (steps, len(steps), {s.id: s for s in steps})
            self.__dict__["_step_index"] = cached
        s = cached[2].get(step_id)
        if s is not None and s.id == step_id:
            return s
        for s in steps:
            if s.id == step_id:
                return s
        raise NotFoundError("step", step_id, f"in workflow {self.id}")

    def has_step(self, step_id: str) -> bool:
        """True when a step called *step_id* exists."""
        return any(s.id == step_id for s in self.steps)

    def deps_done(self, step: Step) -> bool:
        """True when every dependency of *step* is completed or skipped."""
        for dep in step.deps:  # through the index: a step op runs this on every start
            try:
                if self.step(dep).status not in DONE_STATUSES:
                    return False
            except NotFoundError:
                return False  # an unknown dependency is never done
        return True

    @property
    def progress(self) -> float:
        """Completed plus skipped steps over all steps, 0..100, one decimal."""
        if not self.steps:
            return 0.0
        done = sum(1 for s in self.steps if s.status in DONE_STATUSES)
        return round(100.0 * done / len(self.steps), 1)

    @property
    def current_step(self) -> str | None:
        """The step in flight: first running, else first startable pending, else None."""
        for s in self.steps:
            if s.status == "running":
                return s.id
        for s in self.steps:
            if s.status == "pending" and self.deps_done(s):
                return s.id
        return None

    # -- JSON form -------------------------------------------------------------------

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """A fresh plain-JSON dict of the whole document (current schema)."""
        cp = json_copy if copy else _keep
        return {
            "schema": self.schema,
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "steps": [s.to_dict(copy) for s in self.steps],
            "data": cp(self.data) if copy else dict(self.data),
            "owner": json_copy(self.owner),
            "parent_id": self.parent_id,
            # changed in place by ops: copied even without *copy* (history entries are
            # never changed once appended; metrics are small and nested)
            "history": cp(self.history) if copy else list(self.history),
            "metrics": json_copy(self.metrics),
            "finish_order": list(self.finish_order),
            "revision": self.revision,
        }

    @classmethod
    def from_dict(cls, doc: Any, *, trusted: bool = False) -> Workflow:
        """Read a workflow document of any known schema (older ones are migrated).

        :raises InvalidInputError: for a malformed document or one from a newer schema.
        """
        cp = _keep if trusted else json_copy
        d = migrate(_obj(doc, "workflow document"))
        where = f"workflow {d.get('id')!r}"
        status = _get(d, "status", str, where)
        if status not in WORKFLOW_STATUSES:
            raise InvalidInputError(f"{where}: unknown status {status!r}")
        owner = _opt(d, "owner", dict, where)
        if owner is not None and (
            not isinstance(owner.get("session_id"), str)
            or not isinstance(owner.get("epoch"), int)
            or isinstance(owner.get("epoch"), bool)
        ):
            raise InvalidInputError(f"{where}: 'owner' must be {{session_id: str, epoch: int}}")
        history = _get(d, "history", list, where)
        order = _get(d, "finish_order", list, where)
        if not all(isinstance(h, dict) for h in history) or not all(
            isinstance(x, str) for x in order
        ):
            raise InvalidInputError(f"{where}: malformed 'history' or 'finish_order'")
        return cls(
            schema=SCHEMA_VERSION,
            id=_get(d, "id", str, where),
            name=_get(d, "name", str, where),
            status=status,
            created_at=_get(d, "created_at", str, where),
            updated_at=_get(d, "updated_at", str, where),
            steps=[Step.from_dict(s, trusted=trusted) for s in _get(d, "steps", list, where)],
            data=cp(_get(d, "data", dict, where), f"{where} data"),
            owner=cp(owner),
            parent_id=_opt(d, "parent_id", str, where),
            history=cp(history, where),
            metrics=cp(_get(d, "metrics", dict, where), where),
            finish_order=list(order),
            revision=_get(d, "revision", int, where),
        )


# -- schema migration ---------------------------------------------------------------------


def _iso(value: Any) -> Any:
    """Schema 0 wrote epoch-second numbers where schema 1 writes ISO strings."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        from claude_state.clock import to_iso

        return to_iso(float(value))
    return value


def _upgrade_0_to_1(doc: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (no ``schema`` key, the prototype's layout) to schema 1.

    Schema 0 named dependencies ``dependencies`` and the retry budget ``retries``, kept
    step output under ``result``, wrote timestamps as epoch numbers, and had no owner,
    history, metrics, tool calls, finish order or revision: these get their empty values.
    """
    out = dict(doc)
    for key in ("created_at", "updated_at"):
        out[key] = _iso(out.get(key))
    if out.get("updated_at") is None:
        out["updated_at"] = out.get("created_at")
    out.setdefault("name", out.get("id"))
    out.setdefault("data", {})
    out.setdefault("owner", None)
    out.setdefault("parent_id", None)
    out.setdefault("history", [])
    out.setdefault("metrics", new_metrics())
    steps: list[Any] = []
    for raw in out.get("steps") or []:
        s = dict(_obj(raw, "step"))
        s["deps"] = s.pop("dependencies", s.get("deps", []))
        s["max_retries"] = s.pop("retries", s.get("max_retries", 0))
        if "result" in s:
            s["output"] = s.pop("result")
        s.setdefault("name", s.get("id"))
        s.setdefault("status", "pending")
        s.setdefault("attempts", 0)
        for key in ("timeout", "agent", "output", "error"):
            s.setdefault(key, None)
        s.setdefault("agent_state", {})
        s.setdefault("tool_calls", [])
        s["started_at"] = _iso(s.get("started_at"))
        s["finished_at"] = _iso(s.get("finished_at"))
        steps.append(s)
    out["steps"] = steps
    # Schema 0 kept no finish order: finish time is the best reconstruction there is.
    finished = [
        (s.get("finished_at") or "", i, s.get("id"))
        for i, s in enumerate(steps)
        if s.get("status") in FINISHED_STATUSES
    ]
    out["finish_order"] = [sid for _, _, sid in sorted(finished)]
    out["revision"] = 0
    out["schema"] = 1
    return out


#: ``_UPGRADES[n]`` turns a schema-``n`` document into a schema-``n+1`` one. Changing the
#: layout means bumping :data:`SCHEMA_VERSION` and adding one function here, never
#: editing an old one: documents in the field are read by chaining them.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _upgrade_0_to_1}


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a workflow document to :data:`SCHEMA_VERSION`; *doc* is not modified.

    A document without ``schema`` is schema 0.

    :raises InvalidInputError: for a schema newer than this code (refusing beats
        silently dropping fields a newer version relies on) or one that is not an int.
    """
    version = doc.get("schema", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidInputError(f"workflow document has an invalid schema {version!r}")
    if version > SCHEMA_VERSION:
        raise InvalidInputError(
            f"workflow document has schema {version}, newer than the {SCHEMA_VERSION} this "
            "claude-state understands; upgrade claude-state to read it"
        )
    out = dict(doc)
    while version < SCHEMA_VERSION:
        out = _UPGRADES[version](out)
        version += 1
        out["schema"] = version
    return out
