"""Benchmark fixtures: realistic states (fixed seed) and the results table."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from workload import SIZES, make_state  # noqa: E402

ROWS: list[tuple[str, ...]] = []
NOTES: list[str] = []

HEADER = (
    "operation",
    "size",
    "claude-state median / p90",
    "floor median / p90",
    "ratio (median)",
    "budget",
)


@pytest.fixture(scope="session", params=list(SIZES))
def sized(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    name = request.param
    return name, make_state(SIZES[name])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not ROWS:
        return
    import platform

    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"fsync {'off' if os.environ.get('CLAUDE_STATE_FSYNC') == '0' else 'on'}; "
        "workload: benchmarks/workload.py (seed 42); times in ms.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in ROWS]
    lines += [""] + [f"- {n}" for n in NOTES]
    text = "\n".join(lines) + "\n"
    dest = os.environ.get("BENCH_REPORT")
    if dest:
        Path(dest).write_text(text)
    else:
        sys.stdout.write("\n" + text)


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Module | None:
    """Collect ``bench_*.py`` when running ``pytest benchmarks/`` (testpaths stays tests/)."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if parent.session.isinitpath(file_path):
            return None  # named on the command line: pytest collects it itself
        return pytest.Module.from_parent(parent, path=file_path)
    return None
