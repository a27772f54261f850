"""``claude-state install`` / ``uninstall`` and the Claude Code plugin packaging.

The settings file is the user's: these tests pin down that we only ever touch our own
handlers, refuse (exit 2, file untouched) what we cannot parse, and that the plugin
files stay consistent with the library.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_state.adapters.claude_code import install as lib
from claude_state.cli import cmd_install
from claude_state.errors import ConfigError, ConflictError, InvalidInputError

REPO = Path(__file__).resolve().parent.parent
WRAPPER = REPO / "hooks" / "claude-state-hook"
CMD = "/opt/cs/bin/python -I -c " + shlex.quote(lib.HOT_CODE)

FOREIGN_PRE = {"type": "command", "command": "lint-guard --strict", "timeout": 3}
FOREIGN_POST = {"type": "command", "command": "python3 /x/format.py"}


def foreign_settings() -> dict[str, Any]:
    """A realistic settings file with other tools' hooks on the same events."""
    return {
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "permissions": {"allow": ["Bash(git status)"], "deny": []},
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [FOREIGN_PRE]},
                {"matcher": "*", "hooks": [dict(FOREIGN_PRE, command="audit")]},
            ],
            "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}],
            "PostToolUse": [{"matcher": "Edit|Write", "hooks": [FOREIGN_POST]}],
        },
        "model": "opus",
        "env": {"FOO": "1"},
    }


def our_handlers(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        h
        for g in settings.get("hooks", {}).get(event, [])
        for h in g.get("hooks", [])
        if lib.is_ours(h)
    ]


@pytest.fixture(autouse=True)
def claude_state_on_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A ``claude-state`` on PATH, so a project install is portable in these tests
    whatever the machine's PATH holds (tests of the other cases replace PATH)."""
    bindir = tmp_path_factory.mktemp("pathbin")
    stub = bindir / "claude-state"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return stub


def write_json(path: Path, data: object) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=2) + "\n").encode()
    path.write_bytes(raw)
    return raw


# -- hook_command --------------------------------------------------------------------------


def test_hook_command_exact_format_and_absolute_path() -> None:
    assert lib.hook_command("/usr/bin/python3") == (
        "/usr/bin/python3 -I -c " + shlex.quote(lib.HOOK_CODE)
    )
    cmd = lib.hook_command()
    words = shlex.split(cmd)
    assert os.path.isabs(words[0])
    assert words[0] == os.path.abspath(sys.executable)  # venv symlink kept, not resolved
    assert words[-2:] == ["-c", lib.HOOK_CODE]


def test_hook_command_quotes_paths_with_spaces_and_makes_them_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cmd = lib.hook_command("my venv/bin/python")
    assert shlex.split(cmd) == [str(tmp_path / "my venv/bin/python"), "-I", "-c", lib.HOOK_CODE]


def test_hook_command_runs_the_hot_module_under_sh(tmp_path: Path) -> None:
    """The command string survives a real ``sh -c`` (how Claude Code runs it)."""
    fake = tmp_path / "dir with space" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", lib.hook_command(str(fake))], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.split("\n")[:2] == ["-I", "-c"]
    assert out.stdout == f"-I\n-c\n{lib.HOOK_CODE}\n"


def test_is_ours_recognises_all_our_forms_and_nothing_else() -> None:
    ours = [
        CMD,
        "'/a b/python' -E -P -c 'from claude_state.adapters.claude_code.hot import main; main()'",
        "/home/u/.local/bin/claude-state hook",
        "claude-state hook PreToolUse",
        '"/opt/x y/claude-state" hook',
    ]
    for command in ours:
        assert lib.is_ours({"type": "command", "command": command}), command
    exec_form = {"type": "command", "command": "python3", "args": ["-c", lib.HOT_CODE]}
    assert lib.is_ours(exec_form)
    foreign = [
        "claude-state status",
        "/usr/bin/my-claude-state hook",
        '"${CLAUDE_PLUGIN_ROOT}/hooks/claude-state-hook"',  # the plugin's own copy
        "python3 hooks.py",
        "unbalanced 'quote",
    ]
    for command in foreign:
        assert not lib.is_ours({"type": "command", "command": command}), command
    assert not lib.is_ours({"type": "http", "url": "http://x"})
    assert not lib.is_ours("claude-state hook")


# -- merge_hooks / remove_hooks ------------------------------------------------------------


def test_merge_adds_every_event_with_matchers_and_timeouts() -> None:
    merged = lib.merge_hooks({}, CMD)
    assert list(merged["hooks"]) == list(lib.EVENTS)
    for event in lib.EVENTS:
        [group] = merged["hooks"][event]
        assert group.get("matcher") == lib.MATCHERS.get(event)
        assert group["hooks"] == [
            {"type": "command", "command": CMD, "timeout": lib.TIMEOUTS[event]}
        ]
    assert merged["hooks"]["PreToolUse"][0]["matcher"] == "*"
    assert "matcher" not in merged["hooks"]["SessionStart"][0]  # fork/any source included
    assert lib.TIMEOUTS["SessionEnd"] <= 10


def test_merge_keeps_foreign_keys_hooks_and_order() -> None:
    original = foreign_settings()
    snapshot = json.loads(json.dumps(original))
    merged = lib.merge_hooks(original, CMD)
    assert original == snapshot  # pure
    assert list(merged) == list(original)  # top-level key order
    for key in ("$schema", "permissions", "model", "env"):
        assert merged[key] == original[key]
    hooks = merged["hooks"]
    # existing events keep their position, new ones are appended after them
    assert list(hooks)[:3] == ["PreToolUse", "Notification", "PostToolUse"]
    assert hooks["Notification"] == original["hooks"]["Notification"]
    # foreign groups come first, untouched; ours is appended as a separate group
    assert hooks["PreToolUse"][:2] == original["hooks"]["PreToolUse"]
    assert hooks["PreToolUse"][2] == {"matcher": "*", "hooks": [lib.hook_entry("PreToolUse", CMD)]}
    assert hooks["PostToolUse"][0] == original["hooks"]["PostToolUse"][0]
    for event in lib.EVENTS:
        assert len(our_handlers(merged, event)) == 1


def test_merge_is_idempotent() -> None:
    once = lib.merge_hooks(foreign_settings(), CMD)
    twice = lib.merge_hooks(once, CMD)
    assert json.dumps(twice) == json.dumps(once)


def test_merge_updates_a_stale_command_in_place_instead_of_duplicating() -> None:
    old_cmd = "/old/venv/bin/python -I -c " + shlex.quote(lib.HOT_CODE)
    settings = {
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash|Edit", "hooks": [{"type": "command", "command": old_cmd}]},
                {"matcher": "*", "hooks": [FOREIGN_PRE]},
            ],
            "Stop": [
                {
                    "hooks": [
                        {
                            "type": "command",
                            "command": "/old/bin/claude-state hook",
                            "timeout": 99,
                            "statusMessage": "saving",
                        },
                    ]
                },
                {"hooks": [{"type": "command", "command": "/older/bin/claude-state hook Stop"}]},
            ],
            "Notification": [{"hooks": [{"type": "command", "command": old_cmd}]}],
        }
    }
    merged = lib.merge_hooks(settings, CMD)
    pre = merged["hooks"]["PreToolUse"]
    # same position, our matcher restored (the group held only our handler)
    assert pre[0] == {"matcher": "*", "hooks": [lib.hook_entry("PreToolUse", CMD)]}
    assert pre[1] == {"matcher": "*", "hooks": [FOREIGN_PRE]}
    assert len(pre) == 2
    # the duplicate is dropped; a key the user added to our handler is kept
    assert merged["hooks"]["Stop"] == [
        {
            "hooks": [
                {
                    "type": "command",
                    "command": CMD,
                    "timeout": lib.TIMEOUTS["Stop"],
                    "statusMessage": "saving",
                }
            ]
        }
    ]
    # an event we no longer hook loses our stale handler (and the list we filled)
    assert "Notification" not in merged["hooks"]
    for event in lib.EVENTS:
        assert [h["command"] for h in our_handlers(merged, event)] == [CMD]


def test_merge_updates_our_handler_inside_a_shared_group_without_touching_the_rest() -> None:
    settings = {
        "hooks": {
            "PostToolUse": [
                {
                    "matcher": "Write",
                    "hooks": [FOREIGN_POST, {"type": "command", "command": "claude-state hook"}],
                }
            ]
        }
    }
    merged = lib.merge_hooks(settings, CMD)
    [group] = merged["hooks"]["PostToolUse"]
    assert group["matcher"] == "Write"  # not ours alone: the user's matcher stays
    assert group["hooks"] == [FOREIGN_POST, lib.hook_entry("PostToolUse", CMD)]


@pytest.mark.parametrize(
    "settings",
    [
        {"hooks": "nope"},
        {"hooks": []},
        {"hooks": None},
        {"hooks": {"PreToolUse": {"matcher": "*"}}},
    ],
)
def test_merge_refuses_hooks_of_the_wrong_type(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        lib.merge_hooks(settings, CMD)
    assert info.value.exit_code == 2


def test_remove_restores_the_original_settings() -> None:
    original = foreign_settings()
    merged = lib.merge_hooks(original, CMD)
    restored = lib.remove_hooks(merged)
    assert restored == original
    assert json.dumps(restored) == json.dumps(original)  # order too
    assert lib.remove_hooks(lib.merge_hooks({"model": "x"}, CMD)) == {"model": "x"}


def test_remove_keeps_user_containers_that_were_already_empty() -> None:
    original = {
        "hooks": {
            "Notification": [],
            "PreToolUse": [{"matcher": "Bash", "hooks": []}],
            "Weird": "not a list",
        }
    }
    merged = lib.merge_hooks(original, CMD)
    assert merged["hooks"]["Notification"] == []
    assert merged["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": []}
    assert lib.remove_hooks(merged) == original
    assert lib.remove_hooks({"hooks": {}}) == {"hooks": {}}


# Property: for any settings holding only foreign hooks, remove(merge(s)) == s.
_handler = st.fixed_dictionaries(
    {"type": st.just("command"), "command": st.sampled_from(["a", "b --x", "python3 y.py"])},
    optional={"timeout": st.integers(1, 60)},
)
_group = st.fixed_dictionaries(
    {"hooks": st.lists(_handler, min_size=1, max_size=3)},
    optional={"matcher": st.sampled_from(["*", "Bash", "Edit|Write", ""])},
)
_hooks = st.dictionaries(
    st.sampled_from([*lib.EVENTS, "Notification", "PostCompact"]),
    st.lists(_group, min_size=1, max_size=3),
    min_size=1,
)
_settings = st.dictionaries(
    st.sampled_from(["model", "env", "permissions", "x"]), st.integers() | st.text(max_size=5)
).flatmap(lambda base: st.one_of(st.just(base), _hooks.map(lambda h: {**base, "hooks": h})))


@given(_settings)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_property_merge_then_remove_is_identity(original: dict[str, Any]) -> None:
    merged = lib.merge_hooks(original, CMD)
    assert lib.merge_hooks(merged, CMD) == merged
    assert json.dumps(lib.remove_hooks(merged)) == json.dumps(original)


# -- settings_path -------------------------------------------------------------------------


def test_settings_path_scopes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert lib.settings_path("project", tmp_path) == tmp_path / ".claude" / "settings.json"
    assert lib.settings_path("local", tmp_path) == tmp_path / ".claude" / "settings.local.json"
    assert lib.settings_path("user", tmp_path) == tmp_path / "home" / ".claude" / "settings.json"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert lib.settings_path("user", None) == tmp_path / "cfg" / "settings.json"
    with pytest.raises(InvalidInputError):
        lib.settings_path("global", tmp_path)


def test_install_user_scope_honours_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = lib.install("user", "/nonexistent-project", command=CMD)
    assert result.path == tmp_path / ".claude" / "settings.json"
    assert result.changed
    assert json.loads(result.path.read_bytes()) == lib.merge_hooks({}, CMD)


# -- install / uninstall on files ----------------------------------------------------------


def test_install_writes_two_space_json_with_trailing_newline_and_mode_0644(tmp_path: Path) -> None:
    result = lib.install("project", tmp_path, command=CMD)
    path = tmp_path / ".claude" / "settings.json"
    assert result.path == path and result.changed and result.events == lib.EVENTS
    raw = path.read_bytes()
    assert raw.endswith(b"}\n") and raw.startswith(b'{\n  "hooks": {\n    "SessionStart"')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp left


def test_install_twice_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.local.json"
    write_json(path, foreign_settings())
    first = lib.install("local", tmp_path, command=CMD)
    assert first.changed
    raw, mtime = path.read_bytes(), path.stat().st_mtime_ns
    second = lib.install("local", tmp_path, command=CMD)
    assert not second.changed
    assert path.read_bytes() == raw
    assert path.stat().st_mtime_ns == mtime


def test_install_keeps_the_mode_of_an_existing_file_and_writes_through_symlinks(
    tmp_path: Path,
) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    write_json(real, {"model": "x"})
    real.chmod(0o600)
    link = tmp_path / "proj" / ".claude" / "settings.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    result = lib.install("project", tmp_path / "proj", command=CMD)
    assert result.path == real
    assert link.is_symlink()
    assert json.loads(real.read_bytes())["model"] == "x"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        b'{"hooks": {',  # truncated
        b"{'single': 'quotes'}",
        b'{"a": NaN}',
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b'{"hooks": "x"}',
        b'{"hooks": [1]}',
        b'{"hooks": {"Stop": {"hooks": []}}}',
        b"\xff\xfe{}",
    ],
)
def test_malformed_settings_are_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    actions: list[Callable[[], object]] = [lambda: lib.install("project", tmp_path, command=CMD)]
    if b"Stop" not in content:  # uninstall leaves an event it need not touch alone
        actions.append(lambda: lib.uninstall("project", tmp_path))
    for action in actions:
        with pytest.raises(ConfigError) as info:
            action()
        assert info.value.exit_code == 2
        assert path.read_bytes() == content
        assert path.stat().st_mtime_ns == 1_000_000_000
        assert [p.name for p in path.parent.iterdir()] == ["settings.json"]


def test_empty_settings_file_counts_as_empty_object(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_bytes(b"")
    assert lib.install("project", tmp_path, command=CMD).changed
    assert json.loads(path.read_bytes()) == lib.merge_hooks({}, CMD)


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    result = lib.install("project", tmp_path, command=CMD, dry_run=True)
    assert result.changed and result.settings == lib.merge_hooks({}, CMD)
    assert not (tmp_path / ".claude").exists()
    path = tmp_path / ".claude" / "settings.json"
    raw = write_json(path, foreign_settings())
    assert lib.install("project", tmp_path, command=CMD, dry_run=True).changed
    assert path.read_bytes() == raw
    lib.install("project", tmp_path, command=CMD)
    installed = path.read_bytes()
    result = lib.uninstall("project", tmp_path, dry_run=True)
    assert result.changed and result.settings == foreign_settings()
    assert path.read_bytes() == installed


def test_uninstall_removes_only_ours_and_restores_the_original(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    write_json(path, foreign_settings())
    lib.install("project", tmp_path, command=CMD)
    result = lib.uninstall("project", tmp_path)
    assert result.changed
    assert set(result.events) == set(lib.EVENTS)
    assert json.loads(path.read_bytes()) == foreign_settings()
    again = lib.uninstall("project", tmp_path)
    assert not again.changed and again.events == ()


def test_uninstall_without_a_file_creates_nothing_and_after_install_leaves_an_object(
    tmp_path: Path,
) -> None:
    assert not lib.uninstall("project", tmp_path).changed
    assert not (tmp_path / ".claude").exists()
    lib.install("project", tmp_path, command=CMD)
    lib.uninstall("project", tmp_path)
    assert json.loads((tmp_path / ".claude" / "settings.json").read_bytes()) == {}


def test_a_concurrent_change_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(b'{"model": "changed by Claude Code"}\n')
    with pytest.raises(ConflictError):
        lib._write_atomic(path, b"{}\n", expected=b"{}\n")
    assert path.read_bytes() == b'{"model": "changed by Claude Code"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


# -- the CLI command (in process) ----------------------------------------------------------


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the real ``main()`` with only this command registered.

    Other command modules are written concurrently and may not exist yet, so the
    command list is narrowed for the call; everything else (global options, error to
    exit-code mapping) is the real thing.
    """
    from claude_state.cli import main as cli_main

    monkeypatch.setattr(cli_main, "COMMANDS", ("install",))
    return cli_main.main(argv)


def test_cli_install_json_and_idempotence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["--project", str(tmp_path), "--json", "install"], monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    path = tmp_path / ".claude" / "settings.json"
    reason = out.pop("reason")
    assert out == {
        "path": str(path),
        "scope": "project",
        "changed": True,
        "dry_run": False,
        "events": list(lib.EVENTS),
        "requested_scope": "project",
        "command": lib.PORTABLE_COMMAND,
        "removed_from": None,
    }
    assert "PATH" in reason and "no path of this machine" in reason
    written = json.loads(path.read_bytes())
    command = written["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    assert command == lib.PORTABLE_COMMAND
    assert _cli(["--project", str(tmp_path), "--json", "install"], monkeypatch) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_cli_dry_run_prints_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--project", str(tmp_path), "--json", "install", "--scope", "local", "--dry-run"]
    assert _cli(args, monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["changed"] is True
    assert set(out["settings"]["hooks"]) == set(lib.EVENTS)
    assert out["path"].endswith("settings.local.json")
    assert not (tmp_path / ".claude").exists()
    assert _cli(["--project", str(tmp_path), "install", "--dry-run"], monkeypatch) == 0
    human = capsys.readouterr().out
    assert "Would install" in human and "Resulting settings" in human and '"hooks"' in human


def test_cli_refuses_malformed_settings_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_bytes(b'{"hooks": [}')
    for command in ("install", "uninstall"):
        assert _cli(["--project", str(tmp_path), command], monkeypatch) == 2
        err = capsys.readouterr().err
        assert err.startswith("claude-state: error:") and "malformed JSON" in err
    assert path.read_bytes() == b'{"hooks": [}'


def test_cli_uninstall_human_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["--project", str(tmp_path), "uninstall"], monkeypatch) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert _cli(["--project", str(tmp_path), "install"], monkeypatch) == 0
    assert "Installed claude-state hooks" in capsys.readouterr().out
    assert _cli(["--project", str(tmp_path), "uninstall"], monkeypatch) == 0
    assert "Removed claude-state hooks" in capsys.readouterr().out


def test_project_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    deep = home / "work" / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert cmd_install._project_dir(None) == deep  # ~/.claude is not a project marker
    (home / "work" / "repo" / ".git").mkdir()
    assert cmd_install._project_dir(None) == home / "work" / "repo"
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(tmp_path))
    assert cmd_install._project_dir(None) == tmp_path
    assert cmd_install._project_dir(str(home)) == home


# -- subprocess: a real process ------------------------------------------------------------


def test_subprocess_cli_harness_end_to_end(tmp_path: Path) -> None:
    """A real process, real ``main()``; only the command list is narrowed (see _cli)."""
    harness = (
        "import sys; import claude_state.cli.main as m; m.COMMANDS = ('install',); "
        "sys.exit(m.main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    path = tmp_path / ".claude" / "settings.json"
    raw = write_json(path, foreign_settings())

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", harness, "--project", str(tmp_path), "--json", *argv],
            capture_output=True,
            text=True,
            env=env,
        )

    first = run("install")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["changed"] is True
    installed = path.read_bytes()
    assert run("install").returncode == 0 and path.read_bytes() == installed
    cmd = json.loads(installed)["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
    assert cmd == lib.PORTABLE_COMMAND
    out = run("uninstall")
    assert out.returncode == 0 and json.loads(out.stdout)["changed"] is True
    assert json.loads(path.read_bytes()) == json.loads(raw)


def test_real_cli_python_m_claude_state_end_to_end(tmp_path: Path) -> None:
    """REAL CLI END TO END: ``python -m claude_state install``, unmodified ``main``.

    Skipped (not failed) while other engineers' command modules listed in
    ``main.COMMANDS`` do not exist yet; it runs as soon as the full CLI imports.
    """
    probe = subprocess.run(
        [sys.executable, "-m", "claude_state", "--version"], capture_output=True, text=True
    )
    if probe.returncode != 0 and "No module named 'claude_state.cli.cmd_" in probe.stderr:
        pytest.skip("full CLI not importable yet: " + probe.stderr.strip().splitlines()[-1])
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    base = [sys.executable, "-m", "claude_state", "--project", str(tmp_path), "--json"]
    out = subprocess.run([*base, "install"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["events"] == list(lib.EVENTS)
    path = tmp_path / ".claude" / "settings.json"
    path.write_bytes(b"{oops")
    bad = subprocess.run([*base, "install"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("claude-state: error:")
    assert path.read_bytes() == b"{oops"


# -- plugin packaging ----------------------------------------------------------------------

PLUGIN_CMD = '"${CLAUDE_PLUGIN_ROOT}/hooks/claude-state-hook"'


def test_plugin_hooks_json_is_valid_and_covers_every_event() -> None:
    doc = json.loads((REPO / "hooks" / "hooks.json").read_bytes())
    assert set(doc) <= {"description", "hooks"}
    assert list(doc["hooks"]) == list(lib.EVENTS)
    assert doc["hooks"] == lib.merge_hooks({}, PLUGIN_CMD)["hooks"]  # in sync with library
    for event, groups in doc["hooks"].items():
        for group in groups:
            for handler in group["hooks"]:
                assert handler["type"] == "command"
                assert handler["command"] == PLUGIN_CMD, event
                assert isinstance(handler["timeout"], int) and handler["timeout"] > 0


def test_plugin_manifest() -> None:
    import tomllib

    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_bytes())
    # Claude Code 2.1.332 reserves plugin names starting "claude-" ("Plugin name
    # "claude-state" is reserved"); the package and the command keep their name.
    assert manifest["name"] == "agent-state"
    assert not manifest["name"].startswith("claude-")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"]
    assert manifest["description"] and manifest["author"]["name"]
    # hooks/hooks.json is loaded from its default place; declaring it again would load
    # the same file twice.
    assert "hooks" not in manifest


def test_marketplace_manifest_lists_the_plugin_from_this_repository() -> None:
    """``/plugin marketplace add <repo>`` reads ``.claude-plugin/marketplace.json``; then
    ``/plugin install agent-state@agent-state`` installs the plugin at the repo root."""
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_bytes())
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_bytes())
    assert isinstance(market["name"], str) and not market["name"].startswith("claude-")
    assert market["owner"]["name"]
    [entry] = market["plugins"]
    assert entry["name"] == manifest["name"]
    assert entry["source"] == "./"
    assert entry["version"] == manifest["version"]


def test_repo_dev_settings_are_what_install_writes_for_the_project() -> None:
    """This repository's committed settings are exactly a project install's, with the
    portable command: no path of any machine in a committed file."""
    raw = (REPO / ".claude" / "settings.json").read_bytes()
    doc = json.loads(raw)
    assert doc == lib.merge_hooks({}, lib.PORTABLE_COMMAND)
    assert raw == lib._dump(doc)
    for event in lib.EVENTS:
        assert [h["command"] for h in our_handlers(doc, event)] == [lib.PORTABLE_COMMAND]
    assert str(REPO) not in raw.decode() and "/home/" not in raw.decode()


# -- the plugin's sh wrapper ---------------------------------------------------------------


def _plugin_copy(tmp_path: Path) -> Path:
    root = tmp_path / "plugin"
    (root / "hooks").mkdir(parents=True)
    shutil.copy2(WRAPPER, root / "hooks" / "claude-state-hook")
    return root


def _fake_python(path: Path, label: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        echo "{label}"
        printf '%s\\n' "$1" "$2"
        printf '%s' "$3" >"$0.code"
        IFS= read -r line; printf '%s' "$line"
        """)
    )
    path.chmod(0o755)
    return path


def _run_wrapper(
    root: Path, env: dict[str, str], stdin: str = "{}"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(root / "hooks" / "claude-state-hook")],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
    )


def test_wrapper_is_executable_posix_sh() -> None:
    assert os.access(WRAPPER, os.X_OK)
    assert WRAPPER.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["/bin/sh", "-n", str(WRAPPER)]).returncode == 0


def test_wrapper_says_so_on_session_start_when_no_python_exists(tmp_path: Path) -> None:
    root = _plugin_copy(tmp_path)
    env = {"PATH": str(tmp_path / "empty"), "CLAUDE_PLUGIN_ROOT": str(root)}
    start = '{"session_id":"s1","hook_event_name":"SessionStart","source":"startup"}\n'
    out = _run_wrapper(root, env, stdin=start)
    assert (out.returncode, out.stderr) == (0, "")
    assert json.loads(out.stdout) == {"systemMessage": lib.NO_PYTHON_MESSAGE}
    tool = '{"session_id":"s1","hook_event_name":"PreToolUse","tool_name":"Bash"}\n'
    out = _run_wrapper(root, env, stdin=tool)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")  # once per session


def _base_python_without_claude_state() -> str:
    base = getattr(sys, "_base_executable", "") or ""
    check = subprocess.run([base, "-I", "-c", "import claude_state"], capture_output=True)
    if not base or check.returncode == 0:
        pytest.skip("no interpreter without claude_state available")
    return base


def test_wrapper_tells_once_per_session_when_python_lacks_claude_state(tmp_path: Path) -> None:
    base = _base_python_without_claude_state()
    root = _plugin_copy(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(base)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"PATH": str(bindir), "CLAUDE_PLUGIN_ROOT": str(root), "TMPDIR": str(tmpdir)}

    def ev(sid: str, name: str) -> str:
        return json.dumps({"session_id": sid, "hook_event_name": name}, separators=(",", ":"))

    first = _run_wrapper(root, env, stdin=ev("s1", "SessionStart"))
    assert (first.returncode, first.stderr) == (0, "")
    msg = json.loads(first.stdout)["systemMessage"]
    assert "cannot import claude_state" in msg and "nothing of this session is recorded" in msg
    assert str(bindir / "python3") in msg
    for name in ("PreToolUse", "Stop", "SessionStart"):  # the same session: said once
        out = _run_wrapper(root, env, stdin=ev("s1", name))
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    # SessionEnd discards a systemMessage: nothing marked, so s2's next event says it
    out = _run_wrapper(root, env, stdin=ev("s2", "SessionEnd"))
    assert (out.returncode, out.stdout) == (0, "")
    assert "systemMessage" in _run_wrapper(root, env, stdin=ev("s2", "PreToolUse")).stdout
    out = _run_wrapper(root, {**env, "CLAUDE_STATE_PYTHON": base}, stdin=ev("s3", "Stop"))
    assert out.returncode == 0 and "systemMessage" in out.stdout
    markers = sorted(p.name for p in (tmpdir / f"claude-state-{os.getuid()}").iterdir())
    assert markers == ["hook-unavailable-s1", "hook-unavailable-s2", "hook-unavailable-s3"]


def test_wrapper_runs_exactly_the_code_install_writes() -> None:
    text = WRAPPER.read_text()
    code = text.split("code='", 1)[1].split("'\n", 1)[0]
    assert code == lib.HOOK_CODE


def test_wrapper_order_of_preference(tmp_path: Path) -> None:
    root = _plugin_copy(tmp_path)
    bindir = tmp_path / "bin"
    _fake_python(bindir / "python3", "path-python3")
    env = {"PATH": str(bindir), "CLAUDE_PLUGIN_ROOT": str(root)}

    out = _run_wrapper(root, env, stdin='{"x": 1}')
    assert out.returncode == 0
    assert out.stdout.split("\n") == ["path-python3", "-I", "-c", '{"x": 1}']  # stdin passed
    code = (bindir / "python3.code").read_text()
    assert code.startswith("import sys\n") and f"from {lib.HOT_MODULE} import main" in code

    # a `claude-state` console script on PATH: its shebang's interpreter
    shebang_py = _fake_python(tmp_path / "venv" / "bin" / "python", "shebang")
    script = bindir / "claude-state"
    script.write_text(f"#!{shebang_py}\nimport sys\n")
    script.chmod(0o755)
    assert _run_wrapper(root, env).stdout.startswith("shebang\n")
    # pip's long-path form
    script.write_text(f"#!/bin/sh\n'''exec' \"{shebang_py}\" \"$0\" \"$@\"\n' '''\n")
    assert _run_wrapper(root, env).stdout.startswith("shebang\n")
    # "#!/usr/bin/env name"
    _fake_python(bindir / "mypy3", "env-form")
    script.write_text("#!/usr/bin/env mypy3\n")
    assert _run_wrapper(root, env).stdout.startswith("env-form\n")

    _fake_python(tmp_path / "data" / ".venv" / "bin" / "python", "plugin-data")
    env["CLAUDE_PLUGIN_DATA"] = str(tmp_path / "data")
    assert _run_wrapper(root, env).stdout.startswith("plugin-data\n")
    _fake_python(root / ".venv" / "bin" / "python", "plugin-venv")
    assert _run_wrapper(root, env).stdout.startswith("plugin-venv\n")
    explicit = _fake_python(tmp_path / "explicit" / "python", "explicit")
    env["CLAUDE_STATE_PYTHON"] = str(explicit)
    assert _run_wrapper(root, env).stdout.startswith("explicit\n")
    # run by hand without CLAUDE_PLUGIN_ROOT: the script's own plugin root is used
    del env["CLAUDE_STATE_PYTHON"], env["CLAUDE_PLUGIN_ROOT"]
    assert _run_wrapper(root, env).stdout.startswith("plugin-venv\n")


def test_hook_code_reports_a_missing_dependency_too(tmp_path: Path) -> None:
    """The inline code: claude_state importable -> the hot path runs; an import error
    inside it (a missing dependency) -> 0 and a systemMessage naming the module."""
    code = lib.HOOK_CODE
    pkg = tmp_path / "claude_state" / "adapters" / "claude_code"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "hot.py").write_text("import no_such_dependency_xyz\n")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    # cwd is first on sys.path with plain -c, so the fake package shadows the real one
    out = subprocess.run(
        [sys.executable, "-c", code],
        input='{"session_id":"s9","hook_event_name":"Stop"}',
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert (
        out.returncode == 0 and "no_such_dependency_xyz" in json.loads(out.stdout)["systemMessage"]
    )
    (pkg / "hot.py").write_text("def main():\n    print('ran')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "ran\n")


def test_hook_command_keeps_user_site_visible_for_pip_user_installs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-I would hide a ``pip install --user`` copy; then -E -P is used (cwd still off path)."""
    import site

    monkeypatch.setattr(site, "getusersitepackages", lambda: str(REPO))
    assert shlex.split(lib.hook_command())[1:3] == ["-E", "-P"]
    assert shlex.split(lib.hook_command("/other/python"))[1] == "-I"  # cannot inspect it
