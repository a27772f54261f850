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
    lower = decode = 0.0
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
        f"bytes.lower() {per(lower, total):.0f} us, bytes.decode() {per(decode, total):.0f} us"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    run("this repository", repo_files(), args.repeat)
    run("pip (vendored packages included)", pip_files(), args.repeat)


if __name__ == "__main__":
    main()
