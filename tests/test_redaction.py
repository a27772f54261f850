"""Secrets never reach the disk; redacted events stay valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hookutil import event, hook_env, run_hook, state_root
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_state.plugins.redaction import CustomPattern, Redactor
from claude_state.plugins.redaction_literals import may_contain_secret

SAMPLES = {
    "private_key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx9\n-----END RSA PRIVATE KEY-----"
    ),
    "anthropic_api_key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "openai_api_key": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123",
    "github_token": "ghp_" + "a1B2c3D4e5" * 4,
    "gitlab_token": "glpat-AbCdEfGhIjKlMnOpQrSt",
    "npm_token": "npm_" + "A1b2C3d4E5f6" * 3,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "google_api_key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "slack_token": "xoxb-1234567890-abcdefghij",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpM",
    "bearer_token": "curl -H 'X: Bearer abcdef0123456789abcdef'",
    "authorization": "Authorization: Basic dXNlcjpwYXNzd29yZA==",
    "url_password": "postgres://admin:hunter2hunter2@db.example.com/prod",
    "assignment": "export DB_PASSWORD=correcthorsebattery",
    "cli_flag": "mysql --password s3cr3tvalue -u root",
}
SECRET_PARTS = {
    "private_key": "MIIEowIBAAKCAQEAx9",
    "bearer_token": "abcdef0123456789abcdef",
    "authorization": "dXNlcjpwYXNzd29yZA==",
    "url_password": "hunter2hunter2",
    "assignment": "correcthorsebattery",
    "cli_flag": "s3cr3tvalue",
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_builtin_pattern_redacted_and_prefilter_hits(kind: str) -> None:
    text = SAMPLES[kind]
    secret = SECRET_PARTS.get(kind, text)
    assert may_contain_secret(text.encode()), "the literal prefilter misses this pattern"
    out = Redactor().redact_text(text)
    assert secret not in out and "[REDACTED:" in out
    raw = json.dumps({"tool_input": {"command": text}}).encode()
    red = Redactor().redact_json_bytes(raw)
    assert secret.encode() not in red
    json.loads(red)


def test_no_trigger_means_untouched() -> None:
    raw = b'{"tool_input":{"file_path":"/a/b.py"},"tool_response":{"content":"x = 1"}}'
    assert not may_contain_secret(raw)
    assert Redactor().redact_json_bytes(raw) is raw


def test_placeholders_and_counts_are_kept() -> None:
    r = Redactor()
    assert r.redact_text("max_tokens=4096") == "max_tokens=4096"
    assert r.redact_text("password=$DB_PASSWORD") == "password=$DB_PASSWORD"


def test_sensitive_keys_redacted_whole() -> None:
    raw = b'{"tool_input":{"password":"pa ss \\" word","accessToken":"abc","max_tokens":5}}'
    doc = json.loads(Redactor().redact_json_bytes(raw))
    assert doc["tool_input"] == {
        "password": "[REDACTED:password]",
        "accessToken": "[REDACTED:token]",
        "max_tokens": 5,
    }


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(sorted(SAMPLES)), st.text())
def test_json_stays_valid(prefix: str, kind: str, suffix: str) -> None:
    doc = {"a": prefix + SAMPLES[kind] + suffix, "b": [prefix, {"password": suffix}], "c": 1}
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    out = Redactor([CustomPattern("quote", r'"+')]).redact_json_bytes(raw)
    parsed = json.loads(out)
    assert set(parsed) == {"a", "b", "c"}


def test_custom_pattern_breaking_quotes_cannot_break_json() -> None:
    raw = json.dumps({"x": 'say "hi" \\ to ACME-1234-XYZ'}).encode()
    out = Redactor([CustomPattern("acme", r'ACME-\d+-[A-Z]+|"')]).redact_json_bytes(raw)
    assert json.loads(out) == {"x": "say [REDACTED:acme]hi[REDACTED:acme] \\ to [REDACTED:acme]"}


def test_secrets_never_reach_disk(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    secrets = [
        SAMPLES["github_token"],
        SAMPLES["aws_access_key_id"],
        "hunter2hunter2",
        "correcthorsebattery",
    ]
    run_hook(event("SessionStart", source="startup"), env)
    run_hook(
        event(
            "PreToolUse",
            tool_name="Bash",
            tool_use_id="s1",
            tool_input={"command": f"GH={secrets[0]} ./deploy --key {secrets[1]}"},
        ),
        env,
    )
    run_hook(
        event(
            "PostToolUse",
            tool_name="Bash",
            tool_use_id="s1",
            tool_input={"command": "cat .env"},
            tool_response={
                "stdout": "DB_URL=postgres://u:hunter2hunter2@h/db\n"
                "DB_PASSWORD=correcthorsebattery\n"
            },
        ),
        env,
    )
    big = "x" * 300_000 + f" token={secrets[3]}"  # the cold path (over the inline limit)
    run_hook(
        event("PostToolUse", tool_name="Read", tool_use_id="s2", tool_response={"content": big}),
        env,
    )
    run_hook(event("Stop", stop_hook_active=False), env)
    from claude_state.storage.blobs import BlobStore
    from claude_state.storage.layout import StateDir

    store = BlobStore(StateDir(state_root(tmp_path)))
    blobs = [store.get(h) for h in store]
    assert blobs, "the oversized event should have left a blob"
    files = [p.read_bytes() for p in state_root(tmp_path).rglob("*") if p.is_file()]
    for s in secrets:
        for data in files + blobs:  # raw files, and blob contents decompressed
            assert s.encode() not in data
    from claude_state.domain.sessions import SessionStore

    assert (
        SessionStore(StateDir(state_root(tmp_path)))
        .peek("7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35")
        .tool_calls
        == 2
    )


def test_custom_patterns_from_config_on_hot_path(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    (tmp_path / ".claude" / "claude-state.json").write_text(
        json.dumps(
            {
                "redaction": {
                    "patterns": [{"name": "acme", "regex": r"ACME-[0-9]{6}", "triggers": ["acme-"]}]
                }
            }
        )
    )
    run_hook(event("SessionStart", source="startup"), env)  # compiles hot.conf
    assert "pattern=acme" in (state_root(tmp_path) / "hot.conf").read_text()
    r = run_hook(
        event(
            "PostToolUse",
            tool_name="Bash",
            tool_use_id="c1",
            tool_response={"stdout": "ticket ACME-123456 opened"},
        ),
        env,
    )
    assert r.returncode == 0
    wal = state_root(tmp_path) / "sessions" / "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35.wal"
    data = wal.read_bytes()
    assert b"ACME-123456" not in data and b"[REDACTED:acme]" in data


def test_bad_custom_regex_is_a_config_error() -> None:
    from claude_state.errors import ConfigError
    from claude_state.plugins.config import parse_config

    with pytest.raises(ConfigError):
        parse_config({"redaction": {"patterns": [{"name": "x", "regex": "("}]}})


def test_a_pattern_added_mid_turn_applies_to_the_next_tool_event(tmp_path: Path) -> None:
    """The hot path stats the config named in hot.conf: an edit takes effect at the next
    event (through the cold path, which refreshes hot.conf), not the next prompt."""
    env = hook_env(tmp_path)
    run_hook(event("SessionStart", source="startup"), env)  # no config yet
    conf = (state_root(tmp_path) / "hot.conf").read_text()
    assert "config=" in conf and "config_mtime=0" in conf
    (tmp_path / ".claude" / "claude-state.json").write_text(
        json.dumps(
            {
                "redaction": {
                    "patterns": [{"name": "acme", "regex": r"ACME-[0-9]{6}", "triggers": ["acme-"]}]
                }
            }
        )
    )
    for n in (1, 2):  # the first goes cold and refreshes hot.conf; the second is hot again
        r = run_hook(
            event(
                "PostToolUse",
                tool_name="Bash",
                tool_use_id=f"c{n}",
                tool_response={"stdout": f"ticket ACME-12345{n} opened"},
            ),
            env,
        )
        assert r.returncode == 0
    data = (
        state_root(tmp_path) / "sessions" / "7f3c2a10-5b8e-4c1d-9a6f-2e4b8d0c1f35.wal"
    ).read_bytes()
    assert b"ACME-123451" not in data and b"ACME-123452" not in data
    assert data.count(b"[REDACTED:acme]") == 2
    assert "pattern=acme" in (state_root(tmp_path) / "hot.conf").read_text()


def _rand(
    n: int, seed: int, chars: str = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
) -> str:
    import random

    rng = random.Random(seed)
    return "".join(rng.choice(chars) for _ in range(n))


def _issue_15() -> list[tuple[str, str]]:
    """The 17 kinds issue #15 found reaching the journal, as ``(text, secret)``; values
    are built here (synthetic) so that this file holds no secret-shaped literal."""
    r = [_rand(n, seed) for seed, n in enumerate([9, 10, 12, 60, 24, 24, 22, 43, 12, 4, 3, 40])]
    hx = _rand(64, 99, "0123456789abcdef")
    pw = [_rand(10, 100 + i) for i in range(4)]
    pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQdGBF{}\n-----END PGP PRIVATE KEY BLOCK-----"
    return [
        ('{"password":"55667788"}', "55667788"),
        ('{"password":"$' + r[0] + '"}', "$" + r[0]),
        ('{"pwd":"' + r[1] + '"}', r[1]),
        ("redis://:" + r[2] + "@cache:6379/0", r[2]),
        (pgp.format(r[3]), r[3]),
        ("xapp-1-A0111111111-2222222222222-" + hx, hx),
        ("https://hooks.slack.com/services/T01111111/B0222222222/" + r[4], r[4]),
        ("sk_" + "live_" + r[5], r[5]),
        ("SG." + r[6] + "." + r[7], r[7]),
        ("DB_PASS=" + r[8], r[8]),
        ('{"password":"' + r[9] + '"}', r[9]),
        ("DB_PASS=" + r[10], "DB_PASS=" + r[10]),
        ("aws configure set aws_secret_access_key " + r[11], r[11]),
        ("curl -u admin:" + pw[0] + " https://x", pw[0]),
        ("mysql -uroot -p" + pw[1] + " app", pw[1]),
        ("sshpass -p " + pw[2] + " ssh root@h", pw[2]),
        ("docker login -u me -p " + pw[3] + " registry.example.com", pw[3]),
    ]


@pytest.mark.parametrize("text,secret", _issue_15())
def test_issue_15_kinds_are_redacted(text: str, secret: str) -> None:
    """Each of these reached the journal before the shape-based rules (issue #15)."""
    raw = json.dumps({"tool_response": {"stdout": text}}).encode()
    assert may_contain_secret(raw)
    out = Redactor().redact_json_bytes(raw)
    assert secret.encode() not in out, out
    json.loads(out)


def test_redacted_string_with_a_lone_surrogate_stays_valid_utf8() -> None:
    """Node writes ``"\\ud83c"`` when it cuts a string inside an emoji; a string that is
    redacted and re-encoded must not turn it into bytes that are not UTF-8."""
    secret = _rand(16, 7)
    raw = b'{"tool_response":{"stdout":"DB_PASS=' + secret.encode() + b' done \\ud83c"}}'
    out = Redactor().redact_json_bytes(raw)
    assert secret.encode() not in out
    out.decode("utf-8")  # strict: no raw surrogate bytes (the escape is kept as one)
    assert json.loads(out)["tool_response"]["stdout"].endswith("done \ud83c")
