"""The README's Python example runs as written, and the public API resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    for i, code in enumerate(blocks):
        script = tmp_path / f"example{i}.py"
        script.write_text(code)
        r = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert r.returncode == 0, f"README example {i} failed:\n{r.stderr}"


def test_every_public_name_resolves() -> None:
    import claude_state

    for name in claude_state.__all__:
        assert getattr(claude_state, name) is not None, name
    assert sorted(claude_state.__all__) == dir(claude_state)


HEAVY = ("pluggy", "orjson", "zstandard", "psutil", "json", "re", "typing", "dataclasses")


def test_importing_the_package_loads_nothing_heavy() -> None:
    """``import claude_state`` adds none of the heavy modules to what the interpreter
    (and, in a dev venv, the editable-install finder) had already loaded."""
    code = (
        "import sys; before = set(sys.modules); import claude_state; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before))"
    )
    r = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
