"""An older workflow WAL put back over the current one is named, never silently dropped.

After a compaction the snapshot holds everything up to its ``last_seq`` and a new WAL
(a new generation) takes the operations acknowledged after it. Copying an older WAL
over that one used to be taken for the crash window of a compaction (snapshot written,
new WAL not yet created), so the acknowledged operations vanished and ``verify`` said
ok. The snapshot now names the salt of the WAL that follows it, and the crash window
is told by the previous WAL still being linked as ``.wal.prev`` (domain/store.py,
``[wal-link]``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.storeutil import T0, make_workflow, new_store

from claude_state.domain import store as store_mod
from claude_state.domain.ops import op_set_data
from claude_state.errors import IntegrityError
from claude_state.storage import wal


def _compacted(tmp: Path) -> tuple[store_mod.WorkflowStore, str, Path]:
    """A workflow compacted at least once, with ops acknowledged in the live WAL only.

    :returns: the store, the WAL path, and a backup of the WAL taken before compaction.
    """
    state, store = new_store(tmp / "s", compact_bytes=1500)
    store.create(make_workflow("w"))
    wpath = state.workflow_wal("w")
    backup = tmp / "backup.wal"
    gen0 = wal.read(wpath).header.generation
    i = 0
    while wal.read(wpath).header.generation == gen0:
        shutil.copyfile(wpath, backup)  # the last copy before the compaction
        store.apply("w", op_set_data(f"k{i}", "v" * 40, T0))
        i += 1
    store.apply("w", op_set_data("acked", "after the compaction", T0))
    store.close()
    assert wal.read(wpath).records  # the acknowledged op lives in the new WAL only
    return store_mod.WorkflowStore(state), wpath, backup


def _verify(root: Path) -> tuple[int, list[dict[str, str]]]:
    r = subprocess.run(
        [sys.executable, "-m", "claude_state", "--state-dir", str(root), "--json", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.returncode, json.loads(r.stdout)["problems"]


@pytest.mark.parametrize("source", ["prev", "backup"])
def test_an_old_wal_put_back_is_named_and_refused(tmp_path: Path, source: str) -> None:
    store, wpath, backup = _compacted(tmp_path)
    assert store.load("w").data["acked"] == "after the compaction"
    shutil.copyfile(wpath + ".prev" if source == "prev" else backup, wpath)
    with pytest.raises(IntegrityError) as err:
        store_mod.WorkflowStore(store.state).load("w")
    assert err.value.kind == "stale_wal"
    code, problems = _verify(tmp_path / "s")
    assert code == 1
    assert {"path": wpath, "kind": "stale_wal"}.items() <= problems[0].items()
    # and a writer refuses too, rather than starting over on top of the loss
    with pytest.raises(IntegrityError):
        store_mod.WorkflowStore(store.state).apply("w", op_set_data("x", 1, T0))


def test_control_without_the_link_check_the_loss_is_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, wpath, _backup = _compacted(tmp_path)
    shutil.copyfile(wpath + ".prev", wpath)
    monkeypatch.setattr(store_mod, "_stale_wal", lambda *a: None)
    data = store_mod.WorkflowStore(store.state).load("w").data
    assert "acked" not in data  # the acknowledged op is gone, and nothing said so


def test_the_crash_window_of_a_compaction_is_not_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the new snapshot, before its WAL: the old WAL is still .wal.prev's
    file, everything in it is in the snapshot, and the next writer goes on."""
    state, store = new_store(tmp_path / "s", compact_bytes=1 << 20)
    store.create(make_workflow("w"))
    for i in range(3):
        store.apply("w", op_set_data(f"k{i}", i, T0))
    real = wal.create

    def crash(*a: object, **k: object) -> object:
        raise SystemExit("killed")

    monkeypatch.setattr(wal, "create", crash)
    store.compact_bytes = 1
    with pytest.raises(SystemExit):
        store.apply("w", op_set_data("k3", 3, T0))
    monkeypatch.setattr(wal, "create", real)
    fresh = store_mod.WorkflowStore(state)
    assert fresh.load("w").data == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
    fresh.apply("w", op_set_data("k4", 4, T0))
    assert store_mod.WorkflowStore(state).load("w").data["k4"] == 4
    assert _verify(tmp_path / "s")[0] == 0


def test_a_save_then_an_old_wal_put_back_is_named(tmp_path: Path) -> None:
    """A whole-document save starts a generation too; the WAL its next writer starts is
    the one the snapshot names."""
    state, store = new_store(tmp_path / "s")
    store.create(make_workflow("w"))
    store.apply("w", op_set_data("a", 1, T0))
    old = tmp_path / "old.wal"
    shutil.copyfile(state.workflow_wal("w"), old)
    wf = store.load("w")
    store.save(wf)
    assert store_mod.WorkflowStore(state).load("w").data == {"a": 1}  # crash-window shape
    store.apply("w", op_set_data("b", 2, T0))
    store.close()
    shutil.copyfile(old, state.workflow_wal("w"))
    code, problems = _verify(tmp_path / "s")
    assert code == 1 and problems[0]["kind"] == "stale_wal"
