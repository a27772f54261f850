"""A realistic workflow state from a fixed seed, for the benchmarks.

Steps carry timestamps, tool calls and outputs that look like what an agent produces:
source code, logs, diffs and test output. Most outputs are 1-30 KB; past 1 MB a few large
logs (100 KB - 2 MB) carry the bulk, as they do in real sessions.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from claude_state.domain.definition import parse_definition
from claude_state.domain.model import Workflow

KB, MB = 1024, 1024 * 1024
SIZES = {"10KB": 10 * KB, "1MB": 1 * MB, "20MB": 20 * MB}

_WORDS = [
    "state",
    "workflow",
    "step",
    "session",
    "lease",
    "checkpoint",
    "output",
    "result",
    "error",
    "retry",
    "timeout",
    "value",
    "config",
    "parser",
    "handler",
    "request",
    "response",
    "client",
    "server",
    "cache",
    "index",
    "token",
    "buffer",
    "stream",
    "record",
    "entry",
    "event",
    "payload",
    "frame",
    "header",
    "length",
    "offset",
    "digest",
    "commit",
    "snapshot",
    "journal",
    "user",
    "path",
    "file",
    "module",
    "function",
    "class",
    "method",
    "test",
    "assert",
    "expected",
    "actual",
    "failed",
    "passed",
]
_MODULES = ["core", "api", "cli", "storage", "engine", "hooks", "models", "utils", "auth", "db"]
_LEVELS = ["INFO"] * 8 + ["DEBUG"] * 5 + ["WARNING"] * 2 + ["ERROR"]


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def _code_line(rng: random.Random, indent: int) -> str:
    pad = "    " * indent
    r = rng.random()
    if r < 0.15:
        args = f"self, {_ident(rng)}: str, {_ident(rng)}: int = {rng.randint(0, 99)}"
        return f"{pad}def {_ident(rng)}({args}) -> dict:"
    if r < 0.3:
        return f"{pad}if {_ident(rng)} is None or len({_ident(rng)}) > {rng.randint(1, 4096)}:"
    if r < 0.45:
        key, val = _ident(rng), rng.randint(0, 10**6)
        return f'{pad}return {{"{key}": {_ident(rng)}, "{rng.choice(_WORDS)}": {val}}}'
    if r < 0.55:
        return f"{pad}# {' '.join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))}"
    return f"{pad}{_ident(rng)} = self.{_ident(rng)}({_ident(rng)}, {rng.randint(0, 1000)})"


def code(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        line = _code_line(rng, rng.randint(0, 3))
        out.append(line)
        n += len(line) + 1
    return "\n".join(out)


def log(rng: random.Random, size: int, t0: float = 1_735_689_600.0) -> str:
    out, n, t = [], 0, t0
    while n < size:
        t += rng.expovariate(20)
        ms = int((t % 1) * 1000)
        hms = f"{int(t // 3600) % 24:02d}:{int(t // 60) % 60:02d}:{int(t) % 60:02d}"
        stamp = f"2025-01-01T{hms}.{ms:03d}Z"
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 10)))
        line = (
            f"{stamp} {rng.choice(_LEVELS):7} {rng.choice(_MODULES)}.{_ident(rng)}: {words} "
            f"id={rng.getrandbits(32):08x} elapsed={rng.random() * 300:.2f}ms"
        )
        out.append(line)
        n += len(line) + 1
    return "\n".join(out)


def diff(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        mod = rng.choice(_MODULES)
        a = rng.randint(1, 900)
        hunk = [
            f"--- a/src/{mod}/{_ident(rng)}.py",
            f"+++ b/src/{mod}/{_ident(rng)}.py",
            f"@@ -{a},12 +{a},14 @@ def {_ident(rng)}",
        ]
        for _ in range(rng.randint(6, 20)):
            mark = rng.choice("  +-")
            hunk.append(mark + _code_line(rng, rng.randint(0, 2)))
        block = "\n".join(hunk)
        out.append(block)
        n += len(block) + 1
    return "\n".join(out)


def tests(rng: random.Random, size: int) -> str:
    out, n, i = [], 0, 0
    while n < size:
        i += 1
        status = "PASSED" if rng.random() < 0.93 else rng.choice(["FAILED", "SKIPPED", "XFAIL"])
        name = f"tests/test_{rng.choice(_MODULES)}.py::test_{_ident(rng)}[{i}]"
        line = f"{name} {status} [{i % 100:3d}%]"
        if status == "FAILED":
            line += (
                f"\nE       AssertionError: assert {rng.randint(0, 99)} == {rng.randint(0, 99)}"
                f"\nE        +  where {rng.randint(0, 99)} = {_ident(rng)}()"
            )
        out.append(line)
        n += len(line) + 1
    return "\n".join(out)


GENERATORS = [code, log, diff, tests]


def output_sizes(rng: random.Random, total: int) -> list[int]:
    """Sizes of step outputs adding up to about *total*: 1-30 KB, plus big logs past 1 MB."""
    sizes: list[int] = []
    left = total
    if total > 2 * MB:
        while left > total * 0.3:  # the bulk in a few large logs
            s = min(left, rng.randint(100 * KB, 2 * MB))
            sizes.append(-s)  # negative: a large log
            left -= s
    while left > 0:
        s = min(left, max(200, int(rng.triangular(1 * KB, 30 * KB, 4 * KB))))
        sizes.append(s)
        left -= s
    rng.shuffle(sizes)
    return sizes


def make_state(size: int, seed: int = 42, wid: str = "bench") -> Workflow:
    """A workflow whose JSON document is about *size* bytes, deterministic in *seed*."""
    rng = random.Random(seed)
    budget = int(size * 0.93)  # leave room for step records, history and tool calls
    sizes = output_sizes(rng, budget)
    steps = [
        {"id": f"step-{i:04d}", "deps": [f"step-{i - 1:04d}"] if i else []}
        for i in range(len(sizes) + 2)
    ]
    wf = parse_definition(
        {"id": wid, "name": "benchmark workflow", "steps": steps}, at="2025-01-01T00:00:00.000Z"
    )
    t = 1_735_689_600.0
    for step, s in zip(wf.steps, sizes, strict=False):
        gen = log if s < 0 else rng.choice(GENERATORS)
        text = gen(rng, abs(s))
        start = t
        t += rng.uniform(0.5, 90.0)
        step.status = "completed"
        step.attempts = 1
        step.started_at = _iso(start)
        step.finished_at = _iso(t)
        step.output = {"kind": gen.__name__, "text": text, "exit_code": 0}
        step.tool_calls = [
            {
                "tool": rng.choice(["Bash", "Edit", "Read", "Grep"]),
                "input": {"command": f"run {_ident(rng)}"},
                "at": _iso(start + 0.1),
            }
            for _ in range(rng.randint(0, 3))
        ]
        wf.finish_order.append(step.id)
    wf.status = "running"
    wf.data = {"ticket": "PROJ-1234", "branch": "feature/durable-state", "counter": 0}
    wf.revision = len(sizes)
    return wf


def _iso(epoch: float) -> str:
    from claude_state.clock import to_iso

    return to_iso(epoch)


def doc_bytes(wf: Workflow) -> bytes:
    return orjson.dumps(wf.to_dict())


def payload_kinds(wf: Workflow) -> dict[str, Any]:
    out: dict[str, int] = {}
    for s in wf.steps:
        if isinstance(s.output, dict) and "kind" in s.output:
            out[s.output["kind"]] = out.get(s.output["kind"], 0) + 1
    return out
