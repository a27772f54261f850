"""A regular (non-editable) install of this checkout, for tests and benchmarks that run
hook processes the way a user's machine does.

An editable install's ``.pth`` import finder runs at every interpreter start (~25 ms,
and it imports ``re`` and ``pathlib`` before any of our code), so timing or import
checks through it measure the finder, not the hook.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: where this environment keeps the dependencies (xxhash, orjson, pluggy, ...)
SITE = sysconfig.get_paths()["purelib"]


def regular_install(dest: str | os.PathLike[str]) -> str:
    """A venv at *dest* whose site-packages holds a plain copy of ``claude_state`` with
    compiled bytecode, as ``pip install claude-state`` gives (no editable finder).
    Dependencies come from this environment through a path-only ``.pth`` (no code runs
    for it). Returns the venv's python (not resolved: a venv is known by its path)."""
    import compileall
    import shutil
    import venv

    dest = os.fspath(dest)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(dest)
    py = os.path.join(dest, "bin", "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copytree(
        REPO / "claude_state",
        os.path.join(site, "claude_state"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    compileall.compile_dir(os.path.join(site, "claude_state"), quiet=1)
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(SITE + "\n")
    return py


def imported_modules(importtime_stderr: bytes) -> list[str]:
    """The modules a process imported, from its ``-X importtime`` report on stderr."""
    out = []
    for line in importtime_stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                out.append(name)
    return out
