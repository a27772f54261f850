"""Hook process wall time against a bare interpreter start, measured in the same loop.

    python benchmarks/bench_hook.py [--runs 40] [--sessions 1000]

1. ``PreToolUse`` and ``PostToolUse`` through the real hook command (``python -I -c
   "from claude_state.adapters.claude_code.hot import main; main()"``), interleaved with
   ``python -I -c pass`` of the same interpreter in one loop, so machine noise hits all
   three alike. Reports median, p90 and the ratio of medians (aim: within 1.5x).
   The same three are also run with ``-S`` and an explicit ``sys.path``: that removes
   ``site``'s ``.pth`` processing, which in a development (editable) install costs ~25 ms
   and imports ``re`` before any of our code runs; it approximates a wheel install.
2. ``SessionStart`` with 1,000 sessions on disk (ended, live and crashed leases), the
   crash scan included.

Not collected by pytest (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = str(Path(__file__).resolve().parents[1])
SITE = sysconfig.get_paths()["purelib"]
HOT = "from claude_state.adapters.claude_code.hot import main; main()"
SID = "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35"


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
    t = time.perf_counter()
    r = subprocess.run(cmd, input=data, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed: {r.stderr.decode()}")
    return elapsed


def regular_install(dest: str) -> str:
    """A venv whose site-packages holds a plain copy of claude_state with compiled
    bytecode, like ``pip install claude-state`` gives (no editable finder, whose import
    hooks cost ~25 ms per interpreter start). Dependencies come from this environment
    through a path-only ``.pth`` (no code runs for it). Returns its python."""
    import compileall
    import shutil
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(dest)
    py = os.path.join(dest, "bin", "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copytree(
        os.path.join(REPO, "claude_state"),
        os.path.join(site, "claude_state"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    compileall.compile_dir(os.path.join(site, "claude_state"), quiet=1)
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(SITE + "\n")
    return py


def bench_tool_calls(runs: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved wall times of PreToolUse/PostToolUse hook processes and of a bare
    ``python -I -c pass`` of the same interpreter, for the dev and a regular install."""
    import compileall

    tmp = tempfile.mkdtemp(prefix="bench-hook-")
    compileall.compile_dir(os.path.join(REPO, "claude_state"), quiet=1)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CLAUDE_STATE_DIR": tmp + "/state",
        "CLAUDE_PROJECT_DIR": tmp,
    }
    if os.environ.get("CLAUDE_STATE_FSYNC") == "0":  # CPU cost only (unsafe; for analysis)
        env["CLAUDE_STATE_FSYNC"] = "0"
    pre = _event(
        "PreToolUse",
        tool_name="Bash",
        tool_use_id="toolu_1",
        tool_input={"command": "pytest -q tests/test_payments.py", "timeout": 120000},
    )
    post = _event(
        "PostToolUse",
        tool_name="Bash",
        tool_use_id="toolu_1",
        tool_input={"command": "pytest -q tests/test_payments.py"},
        tool_response={"stdout": "....F.\n1 failed, 5 passed in 0.41s\n", "stderr": ""},
        duration_ms=1840,
    )
    out: dict[str, dict[str, list[float]]] = {}
    for label, py in (
        ("regular install", regular_install(os.path.join(tmp, "venv"))),
        ("dev (editable) install", sys.executable),
    ):
        bare, hook = [py, "-I", "-c", "pass"], [py, "-I", "-c", HOT]
        res: dict[str, list[float]] = {"python -I -c pass": [], "PreToolUse": [], "PostToolUse": []}
        for _ in range(3):  # warm-up
            _time(bare, b"", env), _time(hook, pre, env), _time(hook, post, env)
        for _ in range(runs):
            res["python -I -c pass"].append(_time(bare, b"", env))
            res["PreToolUse"].append(_time(hook, pre, env))
            res["PostToolUse"].append(_time(hook, post, env))
        out[label] = res
    return out


def print_tool_calls(results: dict[str, dict[str, list[float]]]) -> None:
    for label, res in results.items():
        base = _stats(res["python -I -c pass"])[0]
        print(f"\n{label}: {len(res['PreToolUse'])} runs each, interleaved")
        print(f"  {'what':<18} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
        for name, xs in res.items():
            med, p90 = _stats(xs)
            print(f"  {name:<18} {med:>10.1f} {p90:>8.1f} {med / base:>6.2f}")


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
    ap.add_argument("--runs", type=int, default=40)
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
    """Reported, not asserted: the 1.5x aim is a ratio, not a design budget."""
    from conftest import NOTES, ROWS

    results = bench_tool_calls(int(os.environ.get("BENCH_HOOK_RUNS", "25")))
    for label, res in results.items():
        base = res["python -I -c pass"]
        bm, bp = _stats(base)
        for event in ("PreToolUse", "PostToolUse"):
            m, p = _stats(res[event])
            ROWS.append(
                (
                    f"hook process, {event} ({label})",
                    "1 event",
                    f"{m:.2f} / {p:.2f}",
                    f"{bm:.2f} / {bp:.2f} (python -I -c pass)",
                    f"{m / bm:.2f}x",
                    "aim: within 1.5x",
                )
            )
    NOTES.append(
        "hook processes: interleaved with a bare interpreter start of the same "
        "python in one loop; 'regular install' is a copy of the package with "
        "compiled bytecode in a fresh venv (what pip install gives); the editable "
        "dev install's import finder costs ~25 ms on every start, ours and the "
        "baseline's alike"
    )


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
