"""Crash images (RELIABILITY §2): power loss simulated in-process.

The file operations of one store operation are recorded (open/create, write at an
offset, fsync/fdatasync, ftruncate, rename, link, unlink, directory fsync) while it runs
for real. Then, for every prefix of that log, the directory a power cut could leave is
materialised, following the crash model of SQLite's crash VFS:

* ``kill``: everything done so far survives (the page cache outlives a killed process);
* ``lost``: only what was flushed survives: file data as of its last fsync, directory
  entries as of their folder's last fsync;
* ``renamed``: directory changes survive but unflushed data is dropped (the classic
  "zero-length file after rename" of delayed allocation);
* ``torn``: unflushed changes survive only in part: a prefix of them, from the first
  byte that differs from the flushed data (an append cut short, or an overwrite of a
  preallocated WAL's zero room half done), at several fractions.

Every image must load as the old state or the new one: never garbage, never an error
(except "not found" before a create commits). The control removes the fsync before the
rename and shows the harness catches it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.storeutil import T0, make_workflow

from claude_state.domain.ops import op_set_data, op_step
from claude_state.domain.store import WorkflowStore
from claude_state.errors import NotFoundError
from claude_state.storage import atomic
from claude_state.storage.layout import SUBDIRS, StateDir

Event = tuple[Any, ...]


@dataclass
class Recorder:
    root: str
    events: list[Event] = field(default_factory=list)
    fds: dict[int, int] = field(default_factory=dict)  # real fd -> token
    pos: dict[int, int] = field(default_factory=dict)  # token -> offset
    dirs: dict[int, str] = field(default_factory=dict)  # token -> dir path
    next_token: int = 0

    def rel(self, path: Any) -> str | None:
        p = os.path.abspath(os.fspath(path))
        return os.path.relpath(p, self.root) if p.startswith(self.root) else None

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real = {
            n: getattr(os, n)
            for n in (
                "open",
                "write",
                "pwrite",
                "fsync",
                "fdatasync",
                "lseek",
                "ftruncate",
                "replace",
                "link",
                "unlink",
                "close",
            )
        }

        # Files a store already holds open (a cached workflow keeps its WAL open): their
        # writes count too, so they are adopted as if opened now.
        for name in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                continue
            rel = self.rel(target)
            if rel is not None and os.path.isfile(target):
                tok = self.next_token = self.next_token + 1
                self.fds[int(name)] = tok
                self.pos[tok] = 0
                self.events.append(("open", tok, rel, False))

        def _open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            rel = self.rel(path)
            existed = os.path.exists(path)
            fd = real["open"](path, flags, mode, **kw)
            if rel is not None:
                tok = self.next_token = self.next_token + 1
                self.fds[fd] = tok
                self.pos[tok] = 0
                if os.path.isdir(path):
                    self.dirs[tok] = rel
                else:
                    self.events.append(("open", tok, rel, not existed))
            return fd

        def _pwrite(fd: int, data: Any, off: int) -> int:
            n = real["pwrite"](fd, data, off)
            tok = self.fds.get(fd)
            if tok is not None:
                self.events.append(("write", tok, off, bytes(data[:n])))
            return n

        def _write(fd: int, data: Any) -> int:
            n = real["write"](fd, data)
            tok = self.fds.get(fd)
            if tok is not None:
                self.events.append(("write", tok, self.pos[tok], bytes(data[:n])))
                self.pos[tok] += n
            return n

        def _sync(name: str) -> Callable[[int], None]:
            def sync(fd: int) -> None:
                real[name](fd)
                tok = self.fds.get(fd)
                if tok is not None:
                    if tok in self.dirs:
                        self.events.append(("dirsync", self.dirs[tok]))
                    else:
                        self.events.append(("sync", tok))

            return sync

        def _lseek(fd: int, off: int, how: int) -> int:
            r = real["lseek"](fd, off, how)
            if fd in self.fds:
                self.pos[self.fds[fd]] = r
            return r

        def _ftruncate(fd: int, n: int) -> None:
            real["ftruncate"](fd, n)
            if fd in self.fds:
                self.events.append(("truncate", self.fds[fd], n))

        def _two(name: str) -> Callable[..., None]:
            def op(src: Any, dst: Any, *a: Any, **k: Any) -> None:
                real[name](src, dst, *a, **k)
                s, d = self.rel(src), self.rel(dst)
                if s is not None and d is not None:
                    self.events.append((name, s, d))

            return op

        def _unlink(path: Any, *a: Any, **k: Any) -> None:
            real["unlink"](path, *a, **k)
            rel = self.rel(path)
            if rel is not None:
                self.events.append(("unlink", rel))

        def _close(fd: int) -> None:
            real["close"](fd)
            self.fds.pop(fd, None)

        for name, fn in (
            ("open", _open),
            ("write", _write),
            ("pwrite", _pwrite),
            ("fsync", _sync("fsync")),
            ("fdatasync", _sync("fdatasync")),
            ("lseek", _lseek),
            ("ftruncate", _ftruncate),
            ("replace", _two("replace")),
            ("link", _two("link")),
            ("unlink", _unlink),
            ("close", _close),
        ):
            mp.setattr(os, name, fn)


@dataclass
class Inode:
    data: bytearray
    synced: bytes


def replay(
    base: dict[str, bytes], events: list[Event]
) -> tuple[dict[str, Inode], dict[str, Inode], dict[str, Inode]]:
    """(volatile names, durable names, inodes by token) after *events*."""
    names = {p: Inode(bytearray(d), d) for p, d in base.items()}
    durable = dict(names)
    tokens: dict[int, Inode] = {}
    for ev in events:
        kind = ev[0]
        if kind == "open":
            _, tok, rel, created = ev
            if created or rel not in names:
                names[rel] = Inode(bytearray(), b"")
            tokens[tok] = names[rel]
        elif kind == "write":
            _, tok, off, data = ev
            ino = tokens[tok]
            if len(ino.data) < off:
                ino.data.extend(bytes(off - len(ino.data)))
            ino.data[off : off + len(data)] = data
        elif kind == "truncate":
            _, tok, n = ev
            del tokens[tok].data[n:]
        elif kind == "sync":
            ino = tokens[ev[1]]
            ino.synced = bytes(ino.data)
        elif kind == "dirsync":
            d = ev[1]
            for p in [p for p in durable if os.path.dirname(p) == d]:
                del durable[p]
            for p, ino in names.items():
                if os.path.dirname(p) == d:
                    durable[p] = ino
        elif kind == "replace":
            names[ev[2]] = names.pop(ev[1])
        elif kind == "link":
            names[ev[2]] = names[ev[1]]
        elif kind == "unlink":
            names.pop(ev[1], None)
    return names, durable, tokens


Image = tuple[str, dict[str, bytes], dict[str, str]]


def _links(names: dict[str, Inode]) -> dict[str, str]:
    """name -> an earlier name of the same inode (hard links are materialised as links:
    the store tells a crash inside a compaction by the WAL still linked as .wal.prev)."""
    first: dict[int, str] = {}
    out = {}
    for p in sorted(names):
        q = first.setdefault(id(names[p]), p)
        if q != p:
            out[p] = q
    return out


def images(base: dict[str, bytes], events: list[Event]) -> list[Image]:
    out: list[Image] = []
    for k in range(len(events) + 1):
        names, durable, _ = replay(base, events[:k])
        live, kept = _links(names), _links(durable)
        out.append((f"{k}:kill", {p: bytes(i.data) for p, i in names.items()}, live))
        out.append((f"{k}:lost", {p: i.synced for p, i in durable.items()}, kept))
        out.append((f"{k}:renamed", {p: i.synced for p, i in names.items()}, live))
        for frac in (0.1, 0.5, 0.9):
            torn = {p: _torn(bytes(i.data), i.synced, frac) for p, i in names.items()}
            out.append((f"{k}:torn{frac}", torn, live))
    return out


def _torn(data: bytes, synced: bytes, frac: float) -> bytes:
    """*data* whose unflushed changes survived only in part: the first *frac* of them
    from the first byte that differs from *synced*; flushed bytes after that stay."""
    lo, hi = 0, min(len(data), len(synced))  # binary search for the first difference
    while lo < hi:
        mid = (lo + hi) // 2
        if data[lo : mid + 1] == synced[lo : mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    cut = lo + int((len(data) - lo) * frac)
    return data[:cut] + synced[cut:]


def snapshot_dir(root: Path) -> dict[str, bytes]:
    out = {}
    for base, _d, files in os.walk(root):
        for f in files:
            p = os.path.join(base, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def materialise(root: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    if root.exists():
        shutil.rmtree(root)
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True)
    links = links or {}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel not in links:
            (root / rel).write_bytes(data)
    for rel, target in links.items():
        os.link(root / target, root / rel)


def prepare(root: Path) -> WorkflowStore:
    store = WorkflowStore(StateDir(root).ensure(), compact_bytes=1 << 20)
    store.create(make_workflow("wf1"))
    for i in range(4):
        store.apply("wf1", op_set_data(f"k{i}", "v" * 30, T0))
    return store


def _apply(s: WorkflowStore) -> None:
    s.apply("wf1", op_step("s0", "running", at=T0))


def _compact(s: WorkflowStore) -> None:
    s.compact_bytes = 1
    s.apply("wf1", op_step("s0", "running", at=T0))


def _save(s: WorkflowStore) -> None:
    s.save(make_workflow("wf1", data={"restored": "yes"}))


def _create(s: WorkflowStore) -> None:
    s.create(make_workflow("wf2", data={"new": 1}))


def _blob(s: WorkflowStore) -> None:
    s.blob_threshold = 100
    s.apply("wf1", op_set_data("log", "output line\n" * 200, T0))


OPS: dict[str, tuple[str, Callable[[WorkflowStore], None]]] = {
    "apply": ("wf1", _apply),
    "compaction": ("wf1", _compact),
    "save": ("wf1", _save),
    "create": ("wf2", _create),
    "blob": ("wf1", _blob),
}


def load(root: Path, wid: str) -> dict[str, Any] | None:
    try:
        store = WorkflowStore(StateDir(root))
        wf = store.load(wid)
        doc = wf.to_dict()
        # a blob reference must resolve: a document pointing at a lost blob is garbage
        for v in doc["data"].values():
            store.resolve(v)
        return doc
    except NotFoundError:
        return None


def check_images(tmp_path: Path, name: str) -> tuple[int, set[str]]:
    wid, op = OPS[name]
    live = tmp_path / "live"
    store = prepare(live)
    old = load(live, wid)
    base = snapshot_dir(live)
    rec = Recorder(str(live))
    with pytest.MonkeyPatch.context() as mp:
        rec.install(mp)
        op(store)
    new = load(live, wid)
    assert old != new
    kinds = {e[0] for e in rec.events}
    bad = []
    imgs = images(base, rec.events)
    for label, files, links in imgs:
        img = tmp_path / "img"
        materialise(img, files, links)
        try:
            got = load(img, wid)
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            bad.append(f"{label}: {exc!r}")
            continue
        if got != old and got != new:
            bad.append(f"{label}: neither the old nor the new state")
    assert bad == [], f"{name}: {len(bad)} bad images of {len(imgs)}:\n" + "\n".join(bad[:10])
    return len(imgs), kinds


@pytest.mark.parametrize("name", list(OPS))
def test_every_crash_image_loads_old_or_new(tmp_path: Path, name: str) -> None:
    n, kinds = check_images(tmp_path, name)
    assert n > 20
    assert {"write", "sync"} <= kinds
    if name in ("compaction", "save", "create", "blob"):
        assert {"replace", "dirsync"} <= kinds


def test_control_missing_fsync_before_rename_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = atomic.flush_fd

    def no_file_flush(fd: int, data_only: bool = False) -> None:
        if not data_only:  # the temp file's flush before the rename
            return
        real(fd, data_only)

    monkeypatch.setattr(atomic, "flush_fd", no_file_flush)
    with pytest.raises(AssertionError, match="bad images"):
        check_images(tmp_path, "save")
