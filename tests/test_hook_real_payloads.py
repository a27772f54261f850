"""Every tool event a real Claude Code session sends takes the hot path.

``tests/fixtures/claude-code-2.1.332/session.jsonl`` holds the stdin of every hook
process of a real session (Claude Code 2.1.332), byte for byte: nested values come before
``hook_event_name``. Each event is replayed, in order, through the command ``install``
writes, run by ``sh -c`` as Claude Code runs it, in a regular (non-editable) install, with
``-X importtime`` added so the process reports every module it imported. An event that
is not one of the cold events must be journaled without importing any module of the
cold path (the JSON parsers, the plugin machinery, ``re``...).

Controls: the cold events of the same session (``SessionStart``...) are seen importing
the cold path, and so is a tool event cut short (malformed), so the probe does see a
fallback when there is one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from installs import imported_modules, regular_install

from claude_state.adapters.claude_code.hot import COLD_EVENTS
from claude_state.adapters.claude_code.install import hook_command
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "claude-code-2.1.332" / "session.jsonl"
OLD = FIXTURES / "claude_code"

#: Modules that only the cold path (or something heavier) imports.
COLD_MODULES = frozenset(
    {
        "claude_state.adapters.claude_code.events",
        "claude_state.plugins.dispatch",
        "claude_state.plugins.redaction",
        "claude_state.plugins.config",
        "json",
        "orjson",
        "re",
        "pluggy",
        "zstandard",
        "psutil",
        "typing",
        "dataclasses",
        "argparse",
        "importlib.metadata",
    }
)


@pytest.fixture(scope="module")
def command(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The install's hook command for a regular install, with ``-X importtime``."""
    py = regular_install(tmp_path_factory.mktemp("regular") / "venv")
    cmd = hook_command(py)
    exe = shlex.quote(py)
    assert cmd.startswith(exe + " ")
    return exe + " -X importtime" + cmd[len(exe) :]


def _replay(command: str, data: bytes, project: Path) -> tuple[set[str], bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(project),
        "CLAUDE_PROJECT_DIR": str(project),
        "CLAUDE_STATE_STRICT": "1",
    }
    r = subprocess.run(
        ["sh", "-c", command], input=data, env=env, cwd=project, capture_output=True, timeout=60
    )
    mods = imported_modules(r.stderr)
    rest = [ln for ln in r.stderr.decode().splitlines() if not ln.startswith("import time:")]
    assert r.returncode == 0 and not rest, r.stderr.decode()[-2000:]
    return set(mods), r.stdout


def _journaled(project: Path, sid: str) -> int:
    return len(journal.read(StateDir(str(project / ".claude" / "state")), sid))


@pytest.mark.parametrize("source", [REAL, OLD], ids=["claude-code-2.1.332", "hand-shaped"])
def test_every_event_of_a_session_replayed(command: str, tmp_path: Path, source: Path) -> None:
    (tmp_path / ".claude").mkdir()
    if source.is_dir():
        lines = [p.read_bytes() for p in sorted(source.glob("*.json"))]
    else:
        lines = [ln + b"\n" for ln in source.read_bytes().splitlines() if ln.strip()]
    hot = cold = 0
    for data in lines:
        doc = json.loads(data)
        name, sid = doc["hook_event_name"], doc["session_id"]
        before = _journaled(tmp_path, sid)
        mods, out = _replay(command, data, tmp_path)
        if name in COLD_EVENTS:
            cold += 1
            assert "claude_state.adapters.claude_code.events" in mods, name  # control
            continue
        hot += 1
        assert mods & COLD_MODULES == set(), (
            name,
            doc.get("tool_name"),
            sorted(mods & COLD_MODULES),
        )
        assert out == b""
        assert _journaled(tmp_path, sid) == before + 1, name
    assert hot >= 6 and cold >= 2
    if source == REAL:
        assert (hot, cold) == (20, 4)  # PreToolUse x7, PostToolUse x6, ...Failure, ...Batch x6


def test_control_a_malformed_tool_event_is_seen_going_cold(command: str, tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    line = next(
        ln for ln in REAL.read_bytes().splitlines() if b'"hook_event_name":"PreToolUse"' in ln
    )
    mods, _ = _replay(command, line[:-2] + b"\n", tmp_path)  # cut short: not JSON
    assert "claude_state.adapters.claude_code.events" in mods
    assert {"orjson"} <= mods & COLD_MODULES


def test_control_a_reencoded_tool_event_stays_hot(command: str, tmp_path: Path) -> None:
    """json.dumps' spacing and a reversed key order: still hot (the old scanner sent
    both cold)."""
    (tmp_path / ".claude").mkdir()
    line = next(
        ln for ln in REAL.read_bytes().splitlines() if b'"hook_event_name":"PostToolUse"' in ln
    )
    doc = json.loads(line)
    data = json.dumps(dict(reversed(doc.items())), indent=1).encode()
    mods, _ = _replay(command, data, tmp_path)
    assert mods & COLD_MODULES == set()
    assert _journaled(tmp_path, doc["session_id"]) == 1
