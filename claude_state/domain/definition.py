"""Turn a workflow definition (``docs/cli-contract.md``) into a fresh :class:`Workflow`.

Everything wrong with a definition is refused here, before anything is stored, with a
:class:`DefinitionError` (exit 2) that names the offending step(s): a definition that
slips through would fail much later, in the middle of a long agent run. Unknown keys are
refused too, because a typo such as ``"dep"`` would otherwise silently drop an edge.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

from claude_state.errors import CycleError, DefinitionError, InvalidIdError
from claude_state.ids import new_id, validate_id

from .model import Step, Workflow, json_copy, new_metrics

_WORKFLOW_KEYS = frozenset({"id", "name", "steps", "data", "parent_id"})
_STEP_KEYS = frozenset({"id", "name", "deps", "max_retries", "timeout", "agent"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_step(raw: Any, index: int) -> Step:
    """One step entry; errors name the step by id, or by position when it has none."""
    if not isinstance(raw, dict):
        raise DefinitionError(f"step #{index + 1}: expected an object, got {type(raw).__name__}")
    sid = raw.get("id")
    try:
        validate_id(sid, "step id")
    except InvalidIdError as exc:
        raise DefinitionError(f"step #{index + 1}: {exc}", [str(sid)]) from None
    assert isinstance(sid, str)

    def bad(msg: str) -> DefinitionError:
        return DefinitionError(f"step {sid!r}: {msg}", [sid])

    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}")
    name = raw.get("name", sid)
    if not isinstance(name, str):
        raise bad("'name' must be a string")
    deps = raw.get("deps", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise bad("'deps' must be a list of step ids")
    max_retries = raw.get("max_retries", 0)
    if not _is_int(max_retries) or max_retries < 0:
        raise bad("'max_retries' must be an integer >= 0")
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise bad("'timeout' must be a number of seconds > 0, or null")
    agent = raw.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise bad("'agent' must be a string")
    return Step(
        id=sid,
        name=name,
        deps=list(dict.fromkeys(deps)),  # a repeated dependency is harmless: drop it
        max_retries=max_retries,
        timeout=None if timeout is None else float(timeout),
        agent=agent,
    )


def parse_definition(obj: Any, *, at: str | None = None) -> Workflow:
    """Build a new idle workflow from a parsed definition object.

    :param obj: the definition, already parsed from JSON.
    :param at: creation timestamp (ISO); defaults to now. Pass it for reproducible output.
    :returns: a :class:`Workflow` with every step pending, in the order given.
    :raises DefinitionError: for anything malformed (naming the step(s)).
    :raises CycleError: when dependencies form a cycle (``steps`` holds it, in order).
    :raises InvalidIdError: for an invalid workflow id or parent id.
    """
    if not isinstance(obj, dict):
        raise DefinitionError(
            f"workflow definition must be a JSON object, got {type(obj).__name__}"
        )
    unknown = sorted(set(obj) - _WORKFLOW_KEYS)
    if unknown:
        raise DefinitionError(f"workflow definition: unknown key(s) {', '.join(unknown)}")
    wid = obj.get("id")
    wid = new_id("wf-") if wid is None else validate_id(wid, "workflow id")
    parent = obj.get("parent_id")
    if parent is not None:
        validate_id(parent, "parent workflow id")
    name = obj.get("name", wid)
    if not isinstance(name, str):
        raise DefinitionError("workflow definition: 'name' must be a string")
    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise DefinitionError("workflow definition: 'data' must be an object")
    raw_steps = obj.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError("workflow definition: 'steps' must be a non-empty list")

    steps = [_parse_step(raw, i) for i, raw in enumerate(raw_steps)]
    seen: set[str] = set()
    for s in steps:
        if s.id in seen:
            raise DefinitionError(f"duplicate step id {s.id!r}", [s.id])
        seen.add(s.id)
    for s in steps:
        for d in s.deps:
            if d == s.id:
                raise CycleError(
                    f"dependency cycle: {s.id} -> {s.id} (step {s.id!r} depends on itself)",
                    [s.id],
                )
            if d not in seen:
                raise DefinitionError(f"step {s.id!r} depends on unknown step {d!r}", [s.id, d])
    topological_order(steps)  # raises CycleError naming the cycle

    if at is None:
        from claude_state.clock import now_iso

        at = now_iso()
    return Workflow(
        id=wid,
        name=name,
        created_at=at,
        updated_at=at,
        steps=steps,
        data=json_copy(data, "workflow definition 'data'"),
        parent_id=parent,
        metrics=new_metrics(),
    )


def topological_order(steps: Sequence[Step]) -> list[str]:
    """Step ids ordered so every step comes after its dependencies.

    Ties are broken by definition order, so the result is stable and reads like the
    definition. Dependencies on ids not in *steps* are ignored (``parse_definition``
    refuses them earlier).

    :raises CycleError: when the dependencies form a cycle; ``steps`` is one cycle in
        order, where ``a -> b`` reads "a depends on b", starting at the earliest step.
    """
    index = {s.id: i for i, s in enumerate(steps)}
    indegree = [0] * len(steps)
    dependents: list[list[int]] = [[] for _ in steps]
    for i, s in enumerate(steps):
        for d in dict.fromkeys(s.deps):
            if d in index:
                indegree[i] += 1
                dependents[index[d]].append(i)
    ready = [i for i, n in enumerate(indegree) if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(steps[i].id)
        for j in dependents[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(steps):
        cycle = _find_cycle(steps, index, {i for i, n in enumerate(indegree) if n > 0})
        raise CycleError("dependency cycle: " + " -> ".join([*cycle, cycle[0]]), cycle)
    return order


def _find_cycle(steps: Sequence[Step], index: dict[str, int], stuck: set[int]) -> list[str]:
    """One cycle among the *stuck* steps (those Kahn's algorithm could not place).

    Every stuck step has a stuck dependency, so walking dependencies from the earliest
    stuck step must revisit a step; the walk from that first revisit is a cycle.
    """
    start = min(stuck)
    path: list[int] = []
    pos: dict[int, int] = {}
    i = start
    while i not in pos:
        pos[i] = len(path)
        path.append(i)
        i = next(index[d] for d in steps[i].deps if d in index and index[d] in stuck)
    cycle = path[pos[i] :]
    first = cycle.index(min(cycle))  # start the report at the earliest step: stable
    cycle = cycle[first:] + cycle[:first]
    return [steps[j].id for j in cycle]
