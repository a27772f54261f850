"""Parallel tool calls: 50 concurrent PostToolUse hook processes for one session."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hookutil import HOOK, SID, event, hook_env, state_root

from claude_state.domain.sessions import SessionStore
from claude_state.errors import WALError
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

N = 50


def _burst(tmp: Path, env: dict[str, str]) -> None:
    """Start N hook processes at once (stdin held back), then release them together."""
    procs = []
    for i in range(N):
        p = subprocess.Popen(
            HOOK,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp,
        )
        procs.append((i, p))
    for i, p in procs:
        data = event(
            "PostToolUse",
            tool_name="Bash",
            tool_use_id=f"toolu_{i:03d}",
            tool_input={"command": f"echo {i}"},
            tool_response={"stdout": f"{i}\n" * 50},
        )
        assert p.stdin is not None
        p.stdin.write(data)
    for _i, p in procs:
        assert p.stdin is not None
        p.stdin.close()
    for _i, p in procs:
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()
        p.wait(timeout=120)
        p.stdout.close()
        p.stderr.close()
        assert p.returncode == 0, err
        assert out == b""


def test_fifty_concurrent_post_tool_use_all_recorded_once(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    _burst(tmp_path, env)
    state = StateDir(state_root(tmp_path))
    records = journal.read(state, SID)
    ids = [json.loads(p)["ev"]["tool_use_id"] for _s, p in records]
    assert sorted(ids) == [f"toolu_{i:03d}" for i in range(N)]
    assert [s for s, _p in records] == list(range(1, N + 1))
    rec = SessionStore(state).catch_up(SID)
    assert rec.tool_calls == N and rec.events == N
    again = SessionStore(state).catch_up(SID)
    assert again.tool_calls == N  # applied once, however often catch_up runs


def test_negative_control_without_locks_loses_events(tmp_path: Path) -> None:
    """With the flock off, concurrent appends overwrite each other: the test above
    would notice. Several rounds, because loss needs two appends to interleave."""
    lost = False
    for round_ in range(5):
        d = tmp_path / f"r{round_}"
        d.mkdir()
        env = hook_env(d, CLAUDE_STATE_UNSAFE_NO_LOCKS="1", CLAUDE_STATE_STRICT="0")
        _burst(d, env)
        try:
            n = len(journal.read(StateDir(state_root(d)), SID))
        except WALError:
            lost = True  # corruption before the tail: also a failure the test catches
            break
        if n < N:
            lost = True
            break
    assert lost, "50 unlocked concurrent appends never lost an event in 5 rounds"
