"""The redaction prefilter on real code: how many Read outputs stay on the hot path, and
what the prefilter costs per 100 KiB.

    python benchmarks/bench_redaction.py [--repeat 5]

Every text file of this repository and of pip (its vendored third-party packages
included) is wrapped as the ``PostToolUse`` ``Read`` event Claude Code sends (compact
JSON, first 200,000 characters). For each: the new prefilter's answer, the answer of
the literal prefilter it replaced (its trigger list is copied below), and the best of
``--repeat`` timings of the prefilter, of ``bytes.lower()`` and of ``bytes.decode()`` on
the same bytes (those two are the yardsticks: one pass of C over the body, so the
ratio travels across machines and load better than microseconds do).

Not collected by pytest (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_redaction_corpus import pip_files, read_event, repo_files  # noqa: E402

from claude_state.plugins.redaction_literals import may_contain_secret  # noqa: E402

#: the literal prefilter before issue #16 (``bytes.find`` of these, lower-cased)
OLD_TRIGGERS = (
    b"sk-", b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_", b"glpat-", b"npm_",
    b"akia", b"asia", b"aiza", b"xox", b"eyj", b"private key", b"bearer", b"authorization",
    b"password", b"passwd", b"pwd", b"secret", b"token", b"api_key", b"api-key", b"apikey",
    b"access_key", b"access-key", b"credential", b"private_key", b"privatekey", b"accesskey",
)  # fmt: skip


def old_prefilter(raw: bytes) -> bool:
    low = raw.lower()
    if any(low.find(t) >= 0 for t in OLD_TRIGGERS):
        return True
    return low.find(b"://") >= 0 and low.find(b"@") >= 0


def best(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def run(name: str, files: list[Path], repeat: int) -> None:
    n = new_hot = old_hot = 0
    size = {True: 0, False: 0}
    cost = {True: 0.0, False: 0.0}
    lower = decode = old_cost = 0.0
    for p in files:
        try:
            text = p.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        raw = read_event(str(p), text[:200_000])
        n += 1
        flagged = may_contain_secret(raw)
        new_hot += not flagged
        old_hot += not old_prefilter(raw)
        size[flagged] += len(raw)
        cost[flagged] += best(lambda raw=raw: may_contain_secret(raw), repeat)
        old_cost += best(lambda raw=raw: old_prefilter(raw), repeat)
        lower += best(raw.lower, repeat)
        decode += best(raw.decode, repeat)
    total = size[True] + size[False]
    per = lambda t, b: t * 1e6 / (b / 102_400) if b else 0.0  # noqa: E731
    print(
        f"{name}: {n} files, {total / 1e6:.1f} MB; hot path: new {new_hot} "
        f"({100 * new_hot / n:.1f} %), old {old_hot} ({100 * old_hot / n:.1f} %)"
    )
    print(
        f"  prefilter per 100 KiB: no-secret files {per(cost[False], size[False]):.0f} us, "
        f"flagged files {per(cost[True], size[True]):.0f} us; "
        f"old prefilter {per(old_cost, total):.0f} us; "
        f"bytes.lower() {per(lower, total):.0f} us, bytes.decode() {per(decode, total):.0f} us"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--hook", type=int, default=0, help="also time N hook processes")
    args = ap.parse_args()
    if args.hook:
        hook_runs(args.hook)
        return
    run("this repository", repo_files(), args.repeat)
    run("pip (vendored packages included)", pip_files(), args.repeat)


def hook_runs(runs: int) -> None:
    """The hook process on Read events of ordinary code that holds words like ``token``
    or ``secret``, with this tree's prefilter and with the one it replaced (the main
    checkout, when it still has it), against ``python -S -c pass``, interleaved.
    ``-S`` with an explicit ``sys.path`` approximates a wheel install (no ``.pth``)."""
    import json
    import os
    import statistics
    import subprocess
    import sysconfig
    import tempfile

    site = sysconfig.get_paths()["purelib"]
    main_tree = Path("/work/main")
    code = (
        "import sys; sys.path[:0] = [{!r}, {!r}]; "
        "from claude_state.adapters.claude_code.hot import main; main()"
    )
    trees = {"new": str(REPO)}
    if (main_tree / "claude_state").is_dir():
        trees["old"] = str(main_tree)
    samples = {
        "hot.py (13 KB)": (REPO / "claude_state/adapters/claude_code/hot.py").read_text(),
        "sessions.py x4 (100 KB)": ((REPO / "claude_state/domain/sessions.py").read_text() * 4)[
            :100_000
        ],
    }
    for label, text in samples.items():
        # top-level fields first: today's hot-path scanner gives up on a nested object
        # before ``hook_event_name`` (issue #16, item 1), which would time the cold path
        doc = json.loads(read_event("/app/x.py", text))
        first = {k: doc.pop(k) for k in ("session_id", "hook_event_name")}
        raw = json.dumps({**first, **doc}, separators=(",", ":")).encode()
        times: dict[str, list[float]] = {"pass": [], **{k: [] for k in trees}}
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "CLAUDE_STATE_DIR": tmp, "CLAUDE_STATE_STRICT": "1"}
            for _ in range(runs):
                for name in times:
                    cmd = (
                        [sys.executable, "-S", "-c", "pass"]
                        if name == "pass"
                        else [sys.executable, "-S", "-c", code.format(trees[name], site)]
                    )
                    t = time.perf_counter()
                    subprocess.run(cmd, input=raw, env=env, check=True, capture_output=True)
                    times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(
            f"{label}: "
            + ", ".join(f"{k} {v:.1f} ms ({v / med['pass']:.2f}x)" for k, v in med.items())
        )


if __name__ == "__main__":
    main()
