"""Shared helpers for the hook tests: run the real hook command, build events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
HOT_CODE = "from claude_state.adapters.claude_code.hot import main; main()"
HOOK = [sys.executable, "-I", "-c", HOT_CODE]
SID = "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35"


def fixtures() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("*.json"))]


def hook_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A clean hook environment whose state dir is ``tmp/.claude/state``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "PYTHON"))}
    (tmp / ".claude").mkdir(exist_ok=True)
    env["CLAUDE_PROJECT_DIR"] = str(tmp)
    env["CLAUDE_STATE_STRICT"] = "1"
    env.update(extra)
    return env


def state_root(tmp: Path) -> Path:
    return tmp / ".claude" / "state"


def run_hook(
    data: bytes, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        HOOK,
        input=data,
        env=env,
        capture_output=True,
        timeout=timeout,
        cwd=env.get("CLAUDE_PROJECT_DIR"),
    )


def event(name: str, sid: str = SID, **fields: Any) -> bytes:
    """A compact JSON hook input, as Claude Code writes it."""
    doc = {
        "session_id": sid,
        "transcript_path": f"/tmp/{sid}.jsonl",
        "cwd": "/tmp",
        "hook_event_name": name,
        **fields,
    }
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def check_stdout(out: bytes, name: str) -> dict[str, Any] | None:
    """The contract: stdout empty, or one JSON object whose hookSpecificOutput names *name*."""
    if not out.strip():
        return None
    doc = json.loads(out)
    assert isinstance(doc, dict)
    assert doc["hookSpecificOutput"]["hookEventName"] == name
    return doc


def cli_json(tmp: Path, *args: str) -> Any:
    """``claude-state --json ARGS`` for the project in *tmp* (the hook's environment),
    run from this checkout; its JSON answer (a non-zero exit fails the test)."""
    env = hook_env(tmp)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    r = subprocess.run(
        [sys.executable, "-m", "claude_state", "--json", *args],
        env=env,
        capture_output=True,
        cwd=tmp,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)
