"""The workflow, checkpoint and gc commands end to end, through the real program.

Every refusal of ``docs/cli-contract.md`` is checked by exit code (2 invalid input,
3 not found, 4 conflict) and the JSON of every command by its exact contract keys.
Each command runs as ``python -m claude_state --state-dir D ...`` in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Until every command module named in ``cli/main.py`` exists, run the real ``main``
#: with the modules that import (the dispatch, the error mapping and the output are
#: the real ones either way).
_FILTERED = """
import importlib, sys
import claude_state.cli.main as m
ok = []
for c in m.COMMANDS:
    try:
        importlib.import_module(f"claude_state.cli.cmd_{c}")
        ok.append(c)
    except ImportError:
        pass
m.COMMANDS = tuple(ok)
sys.exit(m.main(sys.argv[1:]))
"""


def _real_cli_imports() -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "claude_state", "--help"], capture_output=True, cwd=ROOT
    )
    return r.returncode == 0


_PREFIX = (
    [sys.executable, "-m", "claude_state"]
    if _real_cli_imports()
    else [sys.executable, "-c", _FILTERED]
)

DEFINITION = {
    "id": "rel",
    "name": "Release",
    "steps": [
        {"id": "plan", "name": "Plan"},
        {"id": "build", "deps": ["plan"], "max_retries": 1},
        {"id": "test", "deps": ["build"]},
        {"id": "docs", "deps": ["plan"]},
    ],
}


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"<exit {self.code} out={self.out[:300]!r} err={self.err[:300]!r}>"


class CLI:
    def __init__(self, state: Path) -> None:
        self.state = state

    def __call__(self, *args: str, stdin: str | None = None, json_out: bool = True) -> Result:
        argv = [*_PREFIX, "--state-dir", str(self.state)]
        if json_out:
            argv.append("--json")
        env = dict(os.environ, CLAUDE_STATE_PLUGINS="none")
        proc = subprocess.run(
            [*argv, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        return Result(proc)

    def ok(self, *args: str, stdin: str | None = None) -> Any:
        r = self(*args, stdin=stdin)
        assert r.code == 0, r
        return r.json()

    def refused(self, code: int, *args: str, stdin: str | None = None) -> str:
        r = self(*args, stdin=stdin)
        assert r.code == code, r
        assert r.out == "", r  # --json: nothing on stdout for an error
        # one error line (argparse usage errors print the usage above it)
        errors = [ln for ln in r.err.splitlines() if ln.startswith("claude-state: error:")]
        assert len(errors) == 1, r
        assert "Traceback" not in r.err
        return r.err


@pytest.fixture()
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "state")


@pytest.fixture()
def rel(cli: CLI, tmp_path: Path) -> CLI:
    f = tmp_path / "def.json"
    f.write_text(json.dumps(DEFINITION))
    assert cli.ok("workflow", "create", str(f))["id"] == "rel"
    return cli


# -- happy paths and exact JSON keys ----------------------------------------------------


def test_create_list_show_keys(rel: CLI) -> None:
    listed = rel.ok("workflow", "list")
    assert len(listed) == 1
    assert {"id", "name", "status", "progress"} <= set(listed[0])
    assert listed[0]["status"] == "idle" and listed[0]["progress"] == 0

    shown = rel.ok("workflow", "show", "rel")
    assert set(shown) == {"id", "name", "status", "progress", "current_step", "steps", "data"}
    assert shown["current_step"] == "plan"
    assert [set(s) for s in shown["steps"]] == [{"id", "status", "deps", "attempts"}] * 4
    assert shown["steps"][1] == {
        "id": "build",
        "status": "pending",
        "deps": ["plan"],
        "attempts": 0,
    }
    assert "outputs" in rel.ok("workflow", "show", "rel", "--outputs")


def test_create_from_stdin_generates_an_id(cli: CLI) -> None:
    out = cli.ok("workflow", "create", "-", stdin='{"steps": [{"id": "a"}]}')
    assert out["id"].startswith("wf-")
    assert cli.ok("workflow", "show", out["id"])["steps"][0]["id"] == "a"


def test_steps_progress_outputs_data_and_lifecycle(rel: CLI) -> None:
    rel.ok("workflow", "step", "rel", "plan", "--status", "running")
    big = json.dumps({"log": "x" * 200_000})  # > blob threshold: stored as a blob
    out = rel.ok("workflow", "step", "rel", "plan", "--status", "completed", "--output", "[1]")
    assert out["status"] == "completed" and out["progress"] == 25
    rel.ok(
        "workflow", "step", "rel", "docs", "--status", "running", "--agent-state", '{"cursor": 3}'
    )
    r = rel(
        "workflow", "step", "rel", "docs", "--status", "completed", "--output-file", "-", stdin=big
    )
    assert r.code == 0, r
    shown = rel.ok("workflow", "show", "rel", "--outputs", "--history", "--metrics")
    assert shown["progress"] == 50 and shown["status"] == "running"
    assert shown["outputs"]["plan"] == [1]
    assert shown["outputs"]["docs"] == {"log": "x" * 200_000}
    assert [h["event"] for h in shown["history"]][:2] == ["step", "workflow"]
    assert all("at" in h for h in shown["history"])
    assert shown["metrics"]["transitions"] == 4

    assert rel.ok("workflow", "data", "rel", "owner", '"alice"')["value"] == "alice"
    assert rel.ok("workflow", "data", "rel", "owner")["value"] == "alice"
    assert rel.ok("workflow", "show", "rel")["data"] == {"owner": "alice"}

    assert rel.ok("workflow", "pause", "rel")["status"] == "paused"
    assert rel.ok("workflow", "resume", "rel")["status"] == "running"
    assert rel.ok("workflow", "cancel", "rel")["status"] == "cancelled"


def test_rollback_by_steps(rel: CLI) -> None:
    for s in ("plan", "build"):
        rel.ok("workflow", "step", "rel", s, "--status", "running")
        rel.ok("workflow", "step", "rel", s, "--status", "completed")
    out = rel.ok("workflow", "rollback", "rel", "--steps", "1")
    assert out["rolled_back"] == ["build"] and out["progress"] == 25
    assert out["current_step"] == "build"


def test_checkpoint_create_list_show_restore_keys(rel: CLI) -> None:
    cp = rel.ok("checkpoint", "create", "rel", "-m", "before build", "--tag", "a", "--tag", "b")
    assert {"id", "workflow_id", "type", "tags", "created_at"} <= set(cp)
    assert cp["type"] == "manual" and cp["tags"] == ["a", "b"] and cp["workflow_id"] == "rel"
    rel.ok("workflow", "step", "rel", "plan", "--status", "completed")
    cp2 = rel.ok("checkpoint", "create", "rel", "--type", "post_step")
    assert cp2["incremental"] is True and cp2["parent"] == cp["id"]

    listed = rel.ok("checkpoint", "list", "rel")
    assert [c["id"] for c in listed] == [cp["id"], cp2["id"]]
    for c in listed:
        assert set(c) == {
            "id",
            "workflow_id",
            "type",
            "tags",
            "description",
            "created_at",
            "incremental",
            "damaged",  # added: damaged checkpoints are listed, marked
        }
        assert c["damaged"] is False
    assert listed[0]["description"] == "before build"
    assert rel.ok("checkpoint", "list") == listed

    shown = rel.ok("checkpoint", "show", cp2["id"])
    assert shown["chain"] == [cp["id"], cp2["id"]]

    res = rel.ok("checkpoint", "restore", cp["id"])
    assert {"workflow_id", "checkpoint_id"} <= set(res)
    assert res == {
        "workflow_id": "rel",
        "checkpoint_id": cp["id"],
        "restored_from": cp["id"],
        "warnings": [],
    }
    assert rel.ok("workflow", "show", "rel")["progress"] == 0

    out = rel.ok("workflow", "rollback", "rel", "--to", cp2["id"])
    assert out["progress"] == 25 and out["restored_from"] == cp2["id"]
    assert rel.ok("checkpoint", "verify") == {"ok": True, "checked": 2, "problems": []}


def test_damaged_checkpoint_restore_falls_back_and_says_so(rel: CLI) -> None:
    ids = []
    for s in ("plan", "docs", "build"):
        ids.append(rel.ok("checkpoint", "create", "rel")["id"])
        rel.ok("workflow", "step", "rel", s, "--status", "completed")
    ids.append(rel.ok("checkpoint", "create", "rel")["id"])
    path = rel.state / "checkpoints" / "rel" / f"{ids[2]}.checkpoint"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))

    r = rel("checkpoint", "restore", ids[3])  # its chain goes through the damaged one
    assert r.code == 0, r
    res = r.json()
    assert res["checkpoint_id"] == ids[3] and res["restored_from"] == ids[1]
    assert res["warnings"] and res["warnings"][0].startswith(
        f"checkpoint {ids[3]} is damaged; restored {ids[1]} instead"
    )
    assert "warning" in r.err  # also said on stderr under --json
    shown = rel.ok("workflow", "show", "rel")
    assert [s["status"] for s in shown["steps"]][:1] == ["completed"]  # state of ids[1]
    assert shown["progress"] == 25

    v = rel("checkpoint", "verify", "rel")
    assert v.code == 1
    kinds = {(Path(p["path"]).stem, p["kind"]) for p in v.json()["problems"]}
    assert (ids[2], "corrupt") in kinds and (ids[3], "chain") in kinds
    sug = rel.ok("checkpoint", "suggest", "rel")
    assert sug["recommended"] == ids[1] and len(sug["warnings"]) == 2


def test_gc_command(rel: CLI) -> None:
    for _ in range(12):
        rel.ok("checkpoint", "create", "rel")
    dry = rel.ok("gc", "--keep", "2", "--dry-run")
    assert set(dry) >= {
        "checkpoints_removed",
        "sessions_removed",
        "blobs_removed",
        "bytes_freed",
        "dry_run",
    }
    assert dry["dry_run"] is True and len(rel.ok("checkpoint", "list", "rel")) == 12
    # 12 checkpoints: full at #0 and #10; keeping #10, #11 needs nothing older.
    assert len(dry["checkpoints_removed"]) == 10
    real = rel.ok("gc", "--keep", "2")
    assert real["checkpoints_removed"] == dry["checkpoints_removed"]
    assert len(rel.ok("checkpoint", "list", "rel")) == 2
    assert rel.ok("checkpoint", "verify")["ok"] is True


# -- refusals: exit 2 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "needles"),
    [
        ('{"steps": [{"id": "a",}]}', ["line 1", "column"]),
        ('{"steps": [\n{"id": "a"}\n', ["line"]),
        ("[1, 2]", ["object"]),
        (
            '{"steps": [{"id": "a", "deps": ["b"]}, {"id": "b", "deps": ["a"]}]}',
            ["a", "b", "cycle"],
        ),
        ('{"steps": [{"id": "a", "deps": ["ghost"]}]}', ["a", "ghost"]),
        ('{"steps": [{"id": "a"}, {"id": "a"}]}', ["duplicate", "a"]),
        ('{"id": "../x", "steps": [{"id": "a"}]}', ["../x"]),
        ('{"steps": [{"id": "a/b"}]}', ["a/b"]),
        ('{"steps": []}', ["steps"]),
    ],
)
def test_create_refusals_exit_2(cli: CLI, definition: str, needles: list[str]) -> None:
    err = cli.refused(2, "workflow", "create", "-", stdin=definition)
    for n in needles:
        assert n in err, err
    assert cli.ok("workflow", "list") == []


def test_cycle_is_named_in_order(cli: CLI) -> None:
    d = {
        "steps": [
            {"id": "x"},
            {"id": "a", "deps": ["c"]},
            {"id": "b", "deps": ["a"]},
            {"id": "c", "deps": ["b"]},
        ]
    }
    err = cli.refused(2, "workflow", "create", "-", stdin=json.dumps(d))
    assert "a -> c -> b -> a" in err


@pytest.mark.parametrize(
    "args",
    [
        ["workflow", "show", "../x"],
        ["workflow", "show", "a/b"],
        ["workflow", "show", "x" * 200],
        ["workflow", "step", "rel", "../s", "--status", "running"],
        ["workflow", "step", "rel", "plan", "--status", "running", "--output", "{bad"],
        ["workflow", "step", "rel", "plan", "--status", "bogus"],
        ["workflow", "step", "rel", "plan"],
        ["workflow", "rollback", "rel"],
        ["workflow", "rollback", "rel", "--steps", "0"],
        ["workflow", "rollback", "rel", "--steps", "1", "--to", "cp-x"],
        ["workflow", "data", "rel", "k", "{nope"],
        ["workflow", "nosuch"],
        ["checkpoint", "create", "../x"],
        ["checkpoint", "create", "rel", "--type", "weird"],
        ["checkpoint", "restore", "../../etc"],
        ["checkpoint", "show", "a/b"],
        ["gc", "--older-than", "soon"],
        ["gc", "--keep", "-1"],
    ],
)
def test_invalid_input_exit_2(rel: CLI, args: list[str]) -> None:
    rel.refused(2, *args)


def test_workflow_file_missing_is_exit_2(cli: CLI, tmp_path: Path) -> None:
    cli.refused(2, "workflow", "create", str(tmp_path / "nope.json"))


# -- refusals: exit 3 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["workflow", "show", "ghost"],
        ["workflow", "step", "ghost", "plan", "--status", "running"],
        ["workflow", "step", "rel", "ghost", "--status", "running"],
        ["workflow", "pause", "ghost"],
        ["workflow", "resume", "ghost"],
        ["workflow", "cancel", "ghost"],
        ["workflow", "delete", "ghost"],
        ["workflow", "rollback", "ghost", "--steps", "1"],
        ["workflow", "rollback", "rel", "--to", "cp-ghost"],
        ["workflow", "data", "rel", "nokey"],
        ["workflow", "data", "ghost", "k", "1"],
        ["checkpoint", "create", "ghost"],
        ["checkpoint", "list", "ghost"],
        ["checkpoint", "show", "cp-ghost"],
        ["checkpoint", "restore", "cp-ghost"],
    ],
)
def test_not_found_exit_3(rel: CLI, args: list[str]) -> None:
    rel.refused(3, *args)


def test_rollback_to_another_workflows_checkpoint_is_exit_3(rel: CLI) -> None:
    other = rel.ok("workflow", "create", "-", stdin='{"id": "other", "steps": [{"id": "a"}]}')
    cp = rel.ok("checkpoint", "create", other["id"])
    rel.refused(3, "workflow", "rollback", "rel", "--to", cp["id"])


# -- refusals: exit 4 -------------------------------------------------------------------


def test_transition_refusals_exit_4(rel: CLI) -> None:
    # starting a step whose dependencies are not done
    err = rel.refused(4, "workflow", "step", "rel", "build", "--status", "running")
    assert "plan" in err
    rel.refused(4, "workflow", "step", "rel", "test", "--status", "completed")
    # completed -> running other than by rollback
    rel.ok("workflow", "step", "rel", "plan", "--status", "running")
    rel.ok("workflow", "step", "rel", "plan", "--status", "completed")
    rel.refused(4, "workflow", "step", "rel", "plan", "--status", "running")
    # a rollback does take it back
    rel.ok("workflow", "rollback", "rel", "--steps", "1")
    rel.ok("workflow", "step", "rel", "plan", "--status", "running")
    # rolling back more steps than finished
    rel.refused(4, "workflow", "rollback", "rel", "--steps", "5")

    # any step update on a paused workflow
    rel.ok("workflow", "pause", "rel")
    rel.refused(4, "workflow", "step", "rel", "plan", "--status", "completed")
    rel.refused(4, "workflow", "pause", "rel")
    rel.ok("workflow", "resume", "rel")
    rel.refused(4, "workflow", "resume", "rel")
    # ... on a cancelled one
    rel.ok("workflow", "cancel", "rel")
    rel.refused(4, "workflow", "step", "rel", "plan", "--status", "completed")
    rel.refused(4, "workflow", "cancel", "rel")
    assert rel.ok("workflow", "show", "rel")["status"] == "cancelled"


def test_step_update_on_completed_workflow_exit_4(cli: CLI) -> None:
    cli.ok("workflow", "create", "-", stdin='{"id": "w", "steps": [{"id": "a"}]}')
    cli.ok("workflow", "step", "w", "a", "--status", "running")
    cli.ok("workflow", "step", "w", "a", "--status", "completed")
    assert cli.ok("workflow", "show", "w")["status"] == "completed"
    cli.refused(4, "workflow", "step", "w", "a", "--status", "failed")
    cli.refused(4, "workflow", "step", "w", "a", "--status", "pending")


def test_duplicate_workflow_id_exit_4(rel: CLI, tmp_path: Path) -> None:
    f = tmp_path / "again.json"
    f.write_text(json.dumps(DEFINITION))
    rel.refused(4, "workflow", "create", str(f))


def test_human_output_is_a_table_without_colour(rel: CLI) -> None:
    r = rel("workflow", "list", json_out=False)
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "CURRENT", "STEP"]
    assert lines[1].split()[:4] == ["rel", "Release", "idle", "0%"]
    assert "\x1b[" not in r.out
    r = rel("workflow", "show", "rel", json_out=False)
    assert "STEP" in r.out and "plan" in r.out and "\x1b[" not in r.out
