"""The real Claude Code client, installed from npm once and cached between runs.

``claude_code(version)`` returns the path of a working ``claude`` executable of exactly
that version, installing ``@anthropic-ai/claude-code@<version>`` with npm into
``<cache>/claude-code-<version>/`` on first use. The cache survives between runs
(``$CLAUDE_STATE_TEST_CACHE``, else ``$XDG_CACHE_HOME/claude-state-tests``, else
``~/.cache/claude-state-tests``). Parallel runs do not clash: the install happens in a
private temporary folder under an exclusive lock and becomes visible by one atomic
rename, so a reader sees either no install or a complete one.

Only a missing ``node`` or ``npm`` is a reason to skip (:class:`Unavailable`); an npm
install that fails, or a binary that does not report the pinned version, is an error
the test reports.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PACKAGE = "@anthropic-ai/claude-code"
#: The release the fixtures in ../shared/fixtures/claude-code-2.1.332 came from.
VERSION = "2.1.332"
INSTALL_TIMEOUT = 600.0


class Unavailable(Exception):
    """node or npm is not on PATH: the real client cannot be installed here."""


def cache_root() -> Path:
    explicit = os.environ.get("CLAUDE_STATE_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "claude-state-tests"


def _candidates(prefix: Path) -> list[Path]:
    """Where the executable may be: npm's bin link (the postinstall replaces the
    wrapper's placeholder with the native binary), else the platform package's binary
    itself (when npm was told not to run install scripts)."""
    nm = prefix / "node_modules"
    out = [nm / ".bin" / "claude"]
    out += sorted((nm / "@anthropic-ai").glob("claude-code-*/claude"))
    return out


def _reports(exe: Path, version: str) -> bool:
    """Whether *exe* runs and says it is *version* (with a private, empty HOME)."""
    with tempfile.TemporaryDirectory(prefix="claude-version.") as home:
        try:
            p = subprocess.run(
                [str(exe), "--version"],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home},
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return p.returncode == 0 and p.stdout.split()[:1] == [version]


def _working(prefix: Path, version: str) -> Path | None:
    for exe in _candidates(prefix):
        if exe.is_file() and _reports(exe, version):
            return exe
    return None


def claude_code(version: str = VERSION) -> Path:
    """The ``claude`` executable of *version*, installed on first use.

    :raises Unavailable: node or npm is missing. :raises RuntimeError: npm failed.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"{' and '.join(missing)} not on PATH: cannot install {PACKAGE}")
    root = cache_root()
    final = root / f"claude-code-{version}"
    found = _working(final, version)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"claude-code-{version}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing the same version
        found = _working(final, version)
        if found is not None:
            return found
        work = Path(tempfile.mkdtemp(prefix=f".claude-code-{version}.", dir=root))
        try:
            p = subprocess.run(
                [
                    "npm",
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(work),
                    f"{PACKAGE}@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                cwd=work,
            )
            if p.returncode != 0:
                raise RuntimeError(
                    f"npm install {PACKAGE}@{version} failed (exit {p.returncode}):\n"
                    f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
                )
            if _working(work, version) is None:
                raise RuntimeError(
                    f"npm installed {PACKAGE}@{version}, but no claude executable in it "
                    f"reports that version:\n{p.stderr[-2000:]}"
                )
            if final.exists():  # a broken earlier install: replace it
                shutil.rmtree(final)
            os.rename(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    found = _working(final, version)
    if found is None:
        raise RuntimeError(f"{final}: the installed client stopped working after the move")
    return found
