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
    for it); ``bin/claude-state`` is the console script current pip writes,
    ``bin/claude-state-pip23`` the one older pips write. Returns the venv's python (not
    resolved: a venv is known by its path)."""
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
    for name, template in (("claude-state", CONSOLE_SCRIPT), ("claude-state-pip23", PIP23_SCRIPT)):
        script = os.path.join(dest, "bin", name)
        with open(script, "w") as f:
            f.write(template.format(python=py))
        os.chmod(script, 0o755)
    return py


#: The ``claude-state`` console script as pip writes it today (pip 26.2.1's
#: ``PipScriptMaker.script_template``).
CONSOLE_SCRIPT = """#!{python}
import sys
from claude_state.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""

#: The same script as older pips write it (pip 23.2.1, this project's venv: distlib's
#: template), whose wrapper imports ``re`` before any of our code runs.
PIP23_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from claude_state.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def imported_modules(importtime_stderr: bytes) -> list[str]:
    """The modules a process imported, from its ``-X importtime`` report on stderr."""
    out = []
    for line in importtime_stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                out.append(name)
    return out
