"""Events holding a lone UTF-16 surrogate escape are recorded, applied and delivered.

Node cuts strings by UTF-16 code unit; a cut inside an emoji leaves ``"\\ud83c"`` in the
JSON it writes. orjson refuses that, and before ``storage/jsonio.py`` a cold event was
dropped and a hot one journaled and then skipped by every reader.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hookutil import SID, hook_env, run_hook, state_root

from claude_state.domain.sessions import SessionStore
from claude_state.storage import journal, jsonio
from claude_state.storage.layout import StateDir

LONE = b"\\ud83c"  # the six bytes Node writes for a lone high surrogate


def _ev(name: str, extra: bytes) -> bytes:
    head = b'{"session_id":"' + SID.encode() + b'","transcript_path":"/tmp/t.jsonl",'
    head += b'"cwd":"/tmp","hook_event_name":"' + name.encode() + b'"'
    return head + extra + b"}\n"


EVENTS = [
    _ev("SessionStart", b',"source":"startup","model":"m"'),
    _ev("UserPromptSubmit", b',"prompt":"party ' + LONE + b'"'),  # cold
    _ev(
        "PreToolUse",
        b',"tool_name":"Bash","tool_use_id":"tu1","tool_input":{"command":"echo ' + LONE + b'"}',
    ),  # hot
    _ev(
        "PostToolUse",
        b',"tool_name":"Bash","tool_use_id":"tu1","tool_input":{"command":"echo"},'
        b'"tool_response":{"stdout":"done \\udf89 x"}',  # a lone LOW surrogate, hot
    ),
    _ev("Stop", b',"last_assistant_message":"done ' + LONE + b'","stop_hook_active":false'),
]


def test_lone_surrogate_events_are_all_recorded_applied_and_delivered(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    env = hook_env(tmp_path, CLAUDE_STATE_TRACE=str(trace))
    for data in EVENTS:
        r = run_hook(data, env)
        assert r.returncode == 0, r.stderr
    state = StateDir(state_root(tmp_path))
    records = journal.read(state, SID)
    assert [seq for seq, _p in records] == [1, 2, 3, 4, 5]
    # Control: the old readers (plain orjson) refuse four of the five payloads.
    refused = 0
    for _seq, payload in records:
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            refused += 1
    assert refused == 4
    rec = SessionStore(state).catch_up(SID)
    assert rec.events == 5 and rec.applied_seq == 5
    assert rec.last_prompt is not None and rec.last_prompt.endswith("party \ufffd")
    assert rec.tool_calls == 1
    # Every event reached the plugins (the trace names each hook_event call).
    delivered = [ln for ln in trace.read_text().splitlines() if "hook_event(" in ln]
    assert len(delivered) == 5, delivered
    log = state_root(tmp_path) / "logs" / "hook.log"
    assert not log.exists() or "not a JSON hook event" not in log.read_text()


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b'"a \\ud83c"', "a \ufffd"),
        (b'"a \\udf89 b"', "a \ufffd b"),
        (b'"\\ud83c\\udf89"', "\U0001f389"),  # a pair is kept
        (b'"\\\\ud83c"', "\\ud83c"),  # an escaped backslash: text, not an escape
        (b'"\\ud83c\\ud83c\\udf89"', "\ufffd\U0001f389"),
        (b'{"k\\ud800":1}', {"k\ufffd": 1}),
    ],
)
def test_loads_repairs_only_lone_surrogates(raw: bytes, want: object) -> None:
    assert jsonio.loads(raw) == want


def test_loads_still_refuses_what_is_not_json() -> None:
    for bad in (b'{"a":', b'"\\ud83c', b"\\ud83c", b'{"a":"\\ud83c"'):
        with pytest.raises(jsonio.JSONDecodeError):
            jsonio.loads(bad)
