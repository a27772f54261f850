"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hookutil import SID

from claude_state.adapters.claude_code import hot
from claude_state.storage import journal
from claude_state.storage.layout import StateDir

VICTIM = "victim-session"


def _handle(tmp: Path, raw: bytes) -> tuple[int, bytes, StateDir]:
    state = StateDir(tmp / "state")
    env = {"CLAUDE_STATE_DIR": str(tmp / "state"), "CLAUDE_STATE_STRICT": "1"}
    code, out = hot.handle(raw, None, env)
    return code, out, state


# -- 1. the hot path's byte scanner must never take a nested key for the top-level one ---


def test_scanner_ignores_nested_session_id_when_top_level_is_not_compact(tmp_path: Path) -> None:
    # Valid JSON: the nested (compact) copy comes first, the real top-level key has a
    # space after its colon, so the scanner sees the nested one exactly once.
    raw = (
        b'{"hook_event_name":"PostToolUse","tool_name":"Bash",'
        b'"tool_input":{"session_id":"' + VICTIM.encode() + b'"},'
        b'"session_id": "' + SID.encode() + b'"}'
    )
    assert json.loads(raw)["session_id"] == SID
    code, out, state = _handle(tmp_path, raw)
    assert (code, out) == (0, b"")
    assert journal.read(state, VICTIM) == []
    assert len(journal.read(state, SID)) == 1


def test_scanner_ignores_nested_event_name(tmp_path: Path) -> None:
    # A SessionStart whose tool-like payload holds a compact nested hook_event_name:
    # taking the nested one would treat the SessionStart as a hot event (no lease).
    assert (
        hot.scan_field(
            b'{"session_id":"s","payload":{"hook_event_name":"PostToolUse"},'
            b'"hook_event_name": "SessionStart"}',
            "hook_event_name",
        )
        == "SessionStart"
    )
    assert hot.scan_field(b'{"a":[{"session_id":"x"}]}', "session_id") is None
    # The compact, Claude-Code-ordered input is still answered without a parser.
    assert (
        hot.scan_field(
            b'{"session_id":"s1","hook_event_name":"PreToolUse","tool_input":{"x":1}}',
            "session_id",
        )
        == "s1"
    )


# -- 2. a value under a sensitive key is redacted whatever the key (prefilter gap) ---------


def test_every_sensitive_key_fires_the_literal_prefilter() -> None:
    from claude_state.plugins.redaction import SENSITIVE_KEYS
    from claude_state.plugins.redaction_literals import may_contain_secret

    for key in SENSITIVE_KEYS:
        raw = b'{"' + key.encode() + b'":"q8Zr1mX4vT7wB2nK"}'
        assert may_contain_secret(raw), key


def test_hot_path_redacts_secret_under_accesskey_and_privatekey(tmp_path: Path) -> None:
    secrets = {"accessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYzz", "privateKey": "4c0883a69102937d6231"}
    doc = {
        "session_id": SID,
        "hook_event_name": "PostToolUse",
        "tool_name": "Read",
        "tool_input": {"file_path": "/x"},
        "tool_response": secrets,
    }
    code, out, state = _handle(tmp_path, json.dumps(doc, separators=(",", ":")).encode())
    assert (code, out) == (0, b"")
    recs = journal.read(state, SID)
    assert len(recs) == 1
    for value in secrets.values():
        assert value.encode() not in recs[0][1]


# -- 3. storing a value whose blob file is damaged must store it again --------------------


def test_blob_put_rewrites_a_damaged_existing_blob(tmp_path: Path) -> None:
    from claude_state.storage.blobs import BlobStore

    state = StateDir(tmp_path / "state").ensure()
    blobs = BlobStore(state)
    data = b"step output " * 1000
    ref = blobs.put(data)
    path = Path(state.blob(ref["$blob"]))
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # bit rot in the payload
    path.write_bytes(bytes(raw))
    # A new write of the same value (e.g. a later step output) is acknowledged...
    ref2 = blobs.put(data)
    # ...so it must be readable: the damaged copy may not stand in for it.
    assert blobs.get(ref2) == data


def test_blob_put_rewrites_a_truncated_existing_blob(tmp_path: Path) -> None:
    from claude_state.storage.blobs import BlobStore

    state = StateDir(tmp_path / "state").ensure()
    blobs = BlobStore(state)
    data = b"x" * 5000
    ref = blobs.put(data)
    path = Path(state.blob(ref["$blob"]))
    path.write_bytes(path.read_bytes()[:20])
    assert blobs.get(blobs.put(data)) == data


# -- 4. a plugin that prints must not corrupt the hook's stdout (the agent reads it) -------

PRINTING_PLUGIN = """
import os
from claude_state.plugins import hookimpl

@hookimpl
def hook_event(session, event):
    print("plugin says", event.name)           # as in docs/hooks.md's examples
    os.write(1, b"raw fd write\\n")           # or a subprocess inheriting fd 1
"""


def test_plugin_output_never_reaches_hook_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from claude_state.plugins import manager

    name = f"cs_review_printer_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(PRINTING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"plugins": [name]}))
    manager.reset()
    env = {
        "CLAUDE_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_STATE_CONFIG": str(cfg),
        "CLAUDE_STATE_STRICT": "1",
        "CLAUDE_PID": str(os.getpid()),
    }
    try:
        outs = []
        for name_, extra in (
            ("SessionStart", {"source": "startup"}),
            ("PreToolUse", {"tool_name": "Read", "tool_use_id": "t1", "tool_input": {}}),
            ("UserPromptSubmit", {"prompt": "go on"}),
            ("Stop", {"stop_hook_active": False}),
        ):
            doc = {"session_id": SID, "hook_event_name": name_, **extra}
            code, out = hot.handle(json.dumps(doc).encode(), None, env)
            assert code == 0
            outs.append(out)
        captured = capfd.readouterr()
    finally:
        manager.reset()
        sys.modules.pop(name, None)
    assert captured.out == ""  # only the answer, written by main(), may reach stdout
    assert "plugin says" in captured.err  # redirected, not swallowed
    assert all(o == b"" or json.loads(o) for o in outs)


# -- 5. a broken config must not switch the user's custom redaction off ---------------------


def test_invalid_config_keeps_the_last_custom_redaction_patterns(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    pattern = {"name": "acme", "regex": r"ACME-[0-9]{8}", "triggers": ["acme-"]}
    cfg.write_text(json.dumps({"redaction": {"patterns": [pattern]}}))
    env = {
        "CLAUDE_STATE_DIR": str(tmp_path / "state"),
        "CLAUDE_STATE_CONFIG": str(cfg),
        "CLAUDE_STATE_STRICT": "1",
        "CLAUDE_PID": str(os.getpid()),
    }

    def send(name: str, **extra: object) -> None:
        doc = {"session_id": SID, "hook_event_name": name, **extra}
        assert hot.handle(json.dumps(doc).encode(), None, env) == (0, b"")

    send("SessionStart", source="startup")  # writes hot.conf with the pattern
    # The user edits the config and leaves a typo: the config is ignored (logged)...
    cfg.write_text(json.dumps({"redaction": {"patterns": [pattern]}, "polices": {}}))
    send("UserPromptSubmit", prompt="deploy with ACME-12345678 please")  # cold path
    send("PostToolUse", tool_name="Bash", tool_use_id="t1", tool_response="ACME-87654321")
    state = StateDir(tmp_path / "state")
    journal_bytes = b"".join(p for _s, p in journal.read(state, SID))
    # ...but the secrets it told claude-state to hide must still be hidden.
    assert b"ACME-12345678" not in journal_bytes
    assert b"ACME-87654321" not in journal_bytes
