"""Run the core benchmarks and print the markdown tables (for docs/benchmarks.md).

Usage: ``python benchmarks/report.py [extra pytest args]``; set ``BENCH_REPORT`` to
also write the table to a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as d:
        out = os.environ.get("BENCH_REPORT") or str(Path(d) / "report.md")
        env = {**os.environ, "BENCH_REPORT": out}
        rc = subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                str(here / "bench_core.py"),
                "-q",
                "--benchmark-disable-gc",
                *sys.argv[1:],
            ],
            env=env,
            cwd=here.parent,
        )
        if Path(out).exists():
            print(Path(out).read_text())
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
