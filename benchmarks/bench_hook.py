"""Hook process wall time against a bare interpreter start, measured in the same loop.

    python benchmarks/bench_hook.py [--runs 45] [--sessions 1000]

1. Tool events through a **regular install** (a copy of the package with compiled
   bytecode in a fresh venv and pip's ``claude-state`` console script: what ``pip
   install claude-state`` gives; ``tests/installs.py``), fed the real client's payloads
   (``tests/fixtures/claude-code-2.1.332/session.jsonl``, its ``PreToolUse`` and
   ``PostToolUse`` lines in turn) and ``PostToolUse`` Read outputs of ordinary source
   files (this repository's modules and stdlib modules, one file per round, in the real
   Read response's shape). Each runs two ways:

   * the command ``install`` writes (``hook_command``), through ``sh -c`` as Claude Code
     runs it: aim within 1.5x of ``python -I -c pass``;
   * ``claude-state hook`` (the console script current pip writes), through ``sh -c``:
     aim within 2x. Older pips' wrapper imports ``re`` first: reported for PreToolUse.

   All of it interleaved in one loop with ``python -I -c pass`` (run directly, and
   through ``sh -c`` for reference), so machine noise hits every series alike. Reports
   median, p90 and the ratio of medians.
2. ``SessionStart`` with 1,000 sessions on disk (ended, live and crashed leases), the
   crash scan included.

Not collected by plain pytest (``testpaths = ["tests"]``); ``pytest benchmarks`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, os.path.join(REPO, "tests"))

from installs import regular_install  # noqa: E402

HOT = "from claude_state.adapters.claude_code.hot import main; main()"
SID = "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35"
REAL = Path(REPO) / "tests" / "fixtures" / "claude-code-2.1.332" / "session.jsonl"
#: stdlib modules shown as Read output next to this repository's own (a fixed list)
STDLIB = (
    "textwrap.py",
    "bisect.py",
    "heapq.py",
    "fractions.py",
    "calendar.py",
    "difflib.py",
    "shlex.py",
    "string.py",
    "colorsys.py",
    "fnmatch.py",
    "queue.py",
    "statistics.py",
    "dataclasses.py",
    "enum.py",
    "functools.py",
    "csv.py",
    "contextlib.py",
    "abc.py",
    "json/decoder.py",
    "argparse.py",
)


def _event(name: str, sid: str = SID, **fields: object) -> bytes:
    doc = {
        "session_id": sid,
        "transcript_path": "/t.jsonl",
        "cwd": "/tmp",
        "permission_mode": "default",
        "hook_event_name": name,
        **fields,
    }
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _stats(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[int(0.9 * (len(xs) - 1))] * 1000


def _time(cmd: list[str], data: bytes, env: dict[str, str]) -> float:
    return _time_cpu(cmd, data, env)[0]


def _time_cpu(cmd: list[str], data: bytes, env: dict[str, str]) -> tuple[float, float]:
    """Wall time of a process, and the CPU time (user + system) it and its children
    used: the CPU time is less moved by other work on a shared machine."""
    import resource

    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, input=data, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0 or r.stderr:
        raise SystemExit(f"{cmd} failed ({r.returncode}): {r.stderr.decode()}")
    return elapsed, c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime


def real_tool_events() -> list[bytes]:
    """The real session's PreToolUse and PostToolUse inputs, byte for byte."""
    return [
        line + b"\n"
        for line in REAL.read_bytes().splitlines()
        if json.loads(line)["hook_event_name"] in ("PreToolUse", "PostToolUse")
    ]


def read_files() -> list[str]:
    """Ordinary source files: every second module of this repository over 1 KB, and
    :data:`STDLIB`; interleaved, in a fixed order."""
    ours = sorted(
        str(p) for p in Path(REPO, "claude_state").rglob("*.py") if p.stat().st_size > 1024
    )
    std = sysconfig.get_paths()["stdlib"]
    theirs = [os.path.join(std, name) for name in STDLIB]
    ours = ours[::2]
    out: list[str] = []
    for i in range(max(len(ours), len(theirs))):
        out += ours[i : i + 1] + theirs[i : i + 1]
    return out


def read_output(path: str) -> bytes:
    """A ``PostToolUse`` Read of *path*, shaped as the real session's Read response and
    encoded as Claude Code encodes (compact, UTF-8 unescaped)."""
    line = next(
        ln
        for ln in REAL.read_bytes().splitlines()
        if b'"hook_event_name":"PostToolUse"' in ln and b'"tool_name":"Read"' in ln
    )
    doc = json.loads(line)
    text = Path(path).read_text("utf-8")
    n = text.count("\n") + 1
    doc["tool_input"] = {"file_path": path}
    doc["tool_response"] = {
        "type": "text",
        "file": {"filePath": path, "content": text, "numLines": n, "startLine": 1, "totalLines": n},
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


#: the series of one round, in the order they run
SERIES = (
    "python -I -c pass",
    "sh -c 'python -I -c pass'",
    "installed command: PreToolUse",
    "installed command: PostToolUse",
    "installed command: Read output",
    "claude-state hook: PreToolUse",
    "claude-state hook: PostToolUse",
    "claude-state hook: Read output",
    "claude-state hook, pip 23 wrapper (imports re): PreToolUse",
)


def bench_tool_calls(runs: int) -> dict[str, Any]:
    """Interleaved wall times of hook processes (regular install) and of a bare
    ``python -I -c pass`` of the same interpreter; one round per run."""
    from claude_state.adapters.claude_code.install import hook_command
    from claude_state.plugins.redaction_literals import may_contain_secret

    tmp = tempfile.mkdtemp(prefix="bench-hook-")
    py = regular_install(os.path.join(tmp, "venv"))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CLAUDE_STATE_DIR": tmp + "/state",
        "CLAUDE_PROJECT_DIR": tmp,
    }
    if os.environ.get("CLAUDE_STATE_FSYNC") == "0":  # CPU cost only (unsafe; for analysis)
        env["CLAUDE_STATE_FSYNC"] = "0"
    installed = hook_command(py)
    script = shlex.quote(os.path.join(os.path.dirname(py), "claude-state")) + " hook"
    old_script = shlex.quote(os.path.join(os.path.dirname(py), "claude-state-pip23")) + " hook"
    bare = [py, "-I", "-c", "pass"]
    events = real_tool_events()
    pre = [e for e in events if b'"hook_event_name":"PreToolUse"' in e]
    post = [e for e in events if b'"hook_event_name":"PostToolUse"' in e]
    files = read_files()
    reads = [read_output(f) for f in files]
    res: dict[str, list[float]] = {k: [] for k in SERIES}
    cpu: dict[str, list[float]] = {k: [] for k in SERIES}
    re_reads: list[bool] = []  # per round: did the Read output trip the redaction prefilter

    def round_(i: int, keep: bool) -> None:
        p, q, r = pre[i % len(pre)], post[i % len(post)], reads[i % len(reads)]
        times = (
            _time_cpu(bare, b"", env),
            _time_cpu(["sh", "-c", shlex.join(bare)], b"", env),
            _time_cpu(["sh", "-c", installed], p, env),
            _time_cpu(["sh", "-c", installed], q, env),
            _time_cpu(["sh", "-c", installed], r, env),
            _time_cpu(["sh", "-c", script], p, env),
            _time_cpu(["sh", "-c", script], q, env),
            _time_cpu(["sh", "-c", script], r, env),
            _time_cpu(["sh", "-c", old_script], p, env),
        )
        if keep:
            for name, (t, c) in zip(SERIES, times, strict=True):
                res[name].append(t)
                cpu[name].append(c)
            re_reads.append(may_contain_secret(r.strip()))

    for i in range(3):  # warm-up
        round_(i, keep=False)
    for i in range(runs):
        round_(i, keep=True)
    return {
        "times": res,
        "cpu": cpu,
        "command": installed,
        "files": [files[i % len(files)] for i in range(runs)],
        "read_sizes": [len(reads[i % len(reads)]) for i in range(runs)],
        "re_reads": re_reads,
    }


def summarize(result: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """``(series, median ms, p90 ms, ratio of medians to python -I -c pass, the same
    ratio of CPU times)``; the Read series also split by whether the redaction
    prefilter sent the output through ``re``."""
    times, cpu = result["times"], result["cpu"]
    base = _stats(times["python -I -c pass"])[0]
    cbase = _stats(cpu["python -I -c pass"])[0]
    rows = []
    for name in SERIES:
        m, p = _stats(times[name])
        rows.append((name, m, p, m / base, _stats(cpu[name])[0] / cbase))
    for name in ("installed command: Read output", "claude-state hook: Read output"):
        for hit, label in ((False, "no prefilter hit"), (True, "prefilter hit: re")):
            pick = [i for i, h in enumerate(result["re_reads"]) if h == hit]
            if pick:
                m, p = _stats([times[name][i] for i in pick])
                c = _stats([cpu[name][i] for i in pick])[0]
                rows.append((f"{name}, {label} ({len(pick)})", m, p, m / base, c / cbase))
    return rows


def print_tool_calls(result: dict[str, Any]) -> None:
    n = len(result["times"]["python -I -c pass"])
    hits = sum(result["re_reads"])
    print(f"\nregular install: {n} rounds, interleaved; command: {result['command']}")
    print(
        f"Read outputs: {len(set(result['files']))} files, "
        f"{min(result['read_sizes'])}-{max(result['read_sizes'])} bytes; "
        f"{hits} of {n} rounds tripped the redaction prefilter"
    )
    print(f"  {'what':<62} {'median ms':>10} {'p90 ms':>8} {'ratio':>6} {'cpu ratio':>9}")
    for name, m, p, ratio, cratio in summarize(result):
        print(f"  {name:<62} {m:>10.1f} {p:>8.1f} {ratio:>6.2f} {cratio:>9.2f}")


def bench_session_start(n: int, runs: int) -> dict[str, Any]:
    from claude_state.domain import leases
    from claude_state.domain.procinfo import ProcessIdentity
    from claude_state.storage import journal
    from claude_state.storage.layout import StateDir

    tmp = tempfile.mkdtemp(prefix="bench-start-")
    state = StateDir(tmp + "/state").ensure()
    fsync = os.environ.pop("CLAUDE_STATE_FSYNC", None)
    os.environ["CLAUDE_STATE_FSYNC"] = "0"  # the setup only: it is not what is measured
    me = ProcessIdentity.current()
    dead = ProcessIdentity(
        pid=2**22 - 7, start_time="ticks:1", boot_id=me.boot_id, host=me.host, pid_ns=me.pid_ns
    )
    t0 = time.perf_counter()
    for i in range(n):
        sid = f"s{i:05d}-0000-4000-8000-000000000000"
        journal.append(
            state,
            sid,
            [
                journal.wrap(_event("SessionStart", sid, source="startup")),
                journal.wrap(_event("UserPromptSubmit", sid, prompt="hi")),
            ],
        )
        # 1% crashed (dead owner), 9% live (this process), 90% ended.
        owner = dead if i % 100 == 0 else me
        leases.acquire(state, sid, owner)
        if i % 10 not in (0,) and i % 100 != 0:
            leases.release(state, sid)
    del os.environ["CLAUDE_STATE_FSYNC"]
    if fsync is not None:
        os.environ["CLAUDE_STATE_FSYNC"] = fsync
    print(
        f"\nSessionStart with {n} sessions on disk (set up in {time.perf_counter() - t0:.1f} s; "
        f"{n // 100} crashed, ~{n // 10} live, the rest ended)"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CLAUDE_STATE_DIR": state.root,
        "CLAUDE_PROJECT_DIR": tmp,
        "CLAUDE_PID": str(os.getpid()),
    }
    times = []
    out = b""
    for i in range(runs):
        data = _event("SessionStart", f"new{i:04d}-0000-4000-8000-000000000000", source="startup")
        t = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-I", "-c", HOT], input=data, env=env, capture_output=True
        )
        times.append(time.perf_counter() - t)
        out = r.stdout
    med, p90 = _stats(times)
    ctx = json.loads(out)["hookSpecificOutput"]["additionalContext"] if out else ""
    print(
        f"  SessionStart hook process: median {med:.1f} ms, p90 {p90:.1f} ms "
        f"({runs} runs); additionalContext {len(ctx)} chars"
    )
    from claude_state.domain.recovery import find_crashed

    t = time.perf_counter()
    found = find_crashed(state)
    scan = time.perf_counter() - t
    print(f"  find_crashed in-process: {scan * 1000:.1f} ms, {len(found)} crashed")
    return {"times": times, "context_chars": len(ctx), "crashed": len(found), "scan": scan}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=45)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--only-tools", action="store_true", help="skip the SessionStart benchmark")
    args = ap.parse_args()
    print(f"Python {sys.version.split()[0]} at {sys.executable}")
    print_tool_calls(bench_tool_calls(args.runs))
    if not args.only_tools:
        bench_session_start(args.sessions, max(5, args.runs // 4))


if __name__ == "__main__":
    main()


# -- as part of `pytest benchmarks` ---------------------------------------------------------


def test_hook_process_vs_bare_interpreter() -> None:
    """The aims, reported as ratios of medians measured in the same loop: the installed
    command within 1.5x of ``python -I -c pass``, ``claude-state hook`` within 2x, for
    the real client's tool events and for Read outputs of source files.

    Reported, not asserted: a ratio to the interpreter's start-up is an aim, not a design
    budget (``docs/benchmarks.md``), and on a shared 2-core machine it moves by +-0.05x
    from run to run. The aims missed in a run are printed with the table. That the hot
    path is taken at all is asserted by ``tests/test_hook_real_payloads.py``."""
    from conftest import NOTES, ROWS

    result = bench_tool_calls(int(os.environ.get("BENCH_HOOK_RUNS", "45")))
    rows = summarize(result)
    base = next(r for r in rows if r[0] == "python -I -c pass")
    for name, m, p, ratio, cratio in rows:
        if name == base[0]:
            continue
        aim = "-"
        if name in SERIES:
            aim = "aim: within 1.5x" if name.startswith("installed") else "aim: within 2x"
            if name.startswith("sh -c") or "pip 23" in name:
                aim = "-"
        ROWS.append(
            (
                f"hook process (regular install), {name}",
                "1 event",
                f"{m:.2f} / {p:.2f}",
                f"{base[1]:.2f} / {base[2]:.2f} (python -I -c pass)",
                f"{ratio:.2f}x (CPU time: {cratio:.2f}x)",
                aim,
            )
        )
    hits = sum(result["re_reads"])
    NOTES.append(
        "hook processes: a regular install (package copy with bytecode, pip's console "
        "script) in a fresh venv, every series interleaved in one loop with a bare "
        "`python -I -c pass`; tool events are the real 2.1.332 session's PreToolUse and "
        f"PostToolUse inputs; Read outputs are {len(set(result['files']))} source files "
        f"(this repository's and the stdlib's), {hits} of {len(result['re_reads'])} rounds "
        "tripped the redaction prefilter (re imported)"
    )
    ratio = {name: r for name, _, _, r, _ in rows}
    missed = [
        f"{name}: {ratio[name]:.2f}x (aim {limit}x)"
        for name, limit in (
            ("installed command: PreToolUse", 1.5),
            ("installed command: PostToolUse", 1.5),
            ("installed command: Read output", 1.5),
            ("claude-state hook: PreToolUse", 2.0),
            ("claude-state hook: PostToolUse", 2.0),
            ("claude-state hook: Read output", 2.0),
        )
        if ratio[name] > limit
    ]
    NOTES.append("hook aims missed in this run: " + ("; ".join(missed) or "none"))


def test_session_start_with_1000_sessions() -> None:
    from conftest import ROWS

    r = bench_session_start(1000, 7)
    m, p = _stats(r["times"])
    assert r["crashed"] == 10 and r["context_chars"] > 0
    ROWS.append(
        (
            "SessionStart hook process, 1,000 sessions on disk (10 crashed)",
            "-",
            f"{m:.2f} / {p:.2f}",
            "-",
            "-",
            "-",
        )
    )
    ROWS.append(
        (
            "crash scan in-process, 1,000 sessions",
            "-",
            f"{r['scan'] * 1000:.2f}",
            "-",
            "-",
            "aim: < 50 ms",
        )
    )
