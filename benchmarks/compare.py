"""claude-state beside its peers, on the same workload, in one run: prints one table.

    pip install -e '.[compare]'
    python benchmarks/compare.py [--rounds 200] [--recovery-rounds 3] [--out FILE]

Peers: LangGraph's ``SqliteSaver`` (langgraph-checkpoint-sqlite) and DBOS with a SQLite
system database in a temporary directory (no server). Both are used with their default
SQLite settings, which the report reads back from the live connections and prints;
claude-state runs with fsync on (``CLAUDE_STATE_FSYNC=0`` is refused).

What is measured (``docs/PERFORMANCE.md``, "Peers"):

1. **Durable step update inside a 1 MB workflow**: ``WorkflowStore.apply`` of
   ``op_step(completed, output=~10 KB)`` and of ``op_set_data`` with the same 10 KB value,
   beside a raw WAL append + fdatasync of the same op bytes (the floor), LangGraph's
   ``put_writes`` of the same output and ``put`` of the 1 MB checkpoint, and one DBOS
   ``@DBOS.step`` returning the same output inside a ``@DBOS.workflow``, minus the same
   function called bare. All five are timed in one loop, one call each per iteration, in
   a fresh (seeded) random order each iteration: the loop runs inside the DBOS workflow
   body (the only place a DBOS step can run), so every peer sees the same disk weather,
   and each call follows each other call equally often. (A cyclic rotation would not do:
   it gives every call the same predecessor on every iteration, and on a virtual disk a
   flush costs more the longer the device has been idle, 0.17 ms back to back and
   0.36 ms after 5 ms, so whoever always follows the slowest, flush-free stretch of
   CPU work pays the most: ``docs/benchmarks.md``.)
2. **Whole save and load** of the 1 MB and 10 KB states: ``WorkflowStore.save`` / a cold
   ``WorkflowStore.load`` vs ``SqliteSaver.put`` / ``get_tuple`` (the document's top-level
   keys as channel values), interleaved.
3. **Disk used by 100 checkpoints** of a workflow growing 10 KB a step to ~1 MB:
   ``CheckpointStore`` (incremental, a full copy every 10th) vs 100 ``put`` of the same
   documents. Ours: the checkpoints and blobs directories. LangGraph: the database file
   after the connection closed (the WAL folded in), the fairest figure for it; the size
   with ``-wal``/``-shm`` while open is in the notes.
4. **Import time**: whole ``python -c "import X"`` processes, interleaved, median of 10,
   beside ``python -c pass``.
5. **Recovery**: a process is SIGKILLed in the middle of a step of a workflow holding
   ~1 MB (ours: the 1 MB workload state; DBOS: 100 completed steps of 10 KB outputs);
   then a fresh process starts and the time from its start (parent's clock before
   ``Popen``) to the killed step's body running again is taken (``CLOCK_MONOTONIC`` is
   shared by processes on Linux). Ours: ``Runner.run`` (interrupt the running step, run
   it again). DBOS: ``DBOS.launch()``, whose startup recovery re-enqueues pending
   workflows and replays them with memoized step outputs.

Medians and p90 (nearest rank); every ratio is of medians measured in this run. Not
collected by pytest (``testpaths = ["tests"]``; ``benchmarks/conftest.py`` collects
``bench_*.py`` only). Exit 2 when the extra is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workload import GENERATORS, KB, SIZES, make_state  # noqa: E402

from claude_state.domain.checkpoints import CheckpointStore  # noqa: E402
from claude_state.domain.definition import parse_definition  # noqa: E402
from claude_state.domain.model import Workflow  # noqa: E402
from claude_state.domain.ops import op_rollback_steps, op_set_data, op_step  # noqa: E402
from claude_state.domain.store import WorkflowStore  # noqa: E402
from claude_state.storage import frame, wal  # noqa: E402
from claude_state.storage.layout import StateDir  # noqa: E402

T0 = "2025-01-01T00:00:00.000Z"
PEERS = ("langgraph.checkpoint.sqlite", "dbos")
Stats = tuple[float, float]


# -- statistics and formatting ------------------------------------------------------------


def stats(xs: list[float]) -> Stats:
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def fmt_ms(st: Stats) -> str:
    m, p = st
    if m >= 0.1:
        return f"{m * 1000:.1f} / {p * 1000:.1f} ms"
    return f"{m * 1000:.3f} / {p * 1000:.3f} ms"


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call with the cyclic garbage collector paused, as ``timeit``
    does for every timing: otherwise a collection of this process's large heap (the
    peers' libraries, 1 MB documents) lands inside whichever call happens to allocate,
    which measures the harness, not the call. The same rule applies to every system
    measured; ``one_round`` collects between rounds, untimed."""
    import gc

    gc.disable()
    try:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    finally:
        gc.enable()


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []
        self.aims: list[tuple[str, str, bool]] = []

    def row(self, op: str, ours: Stats, peer_name: str, peer: Stats) -> float:
        """A timing row; the ratio is peer / ours (above 1: we are faster)."""
        ratio = peer[0] / ours[0]
        self.rows.append((op, fmt_ms(ours), f"{peer_name}: {fmt_ms(peer)}", f"{ratio:.2f}x"))
        return ratio

    def aim(self, text: str, measured: str, ok: bool) -> None:
        self.aims.append((text, measured, ok))

    def markdown(self, header: list[str]) -> str:
        out = [*header, ""]
        out.append("| operation | claude-state median / p90 | peer median / p90 | ratio |")
        out.append("|---|---|---|---|")
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        out += ["", "Ratio = peer median / claude-state median (above 1: claude-state is faster)."]
        out += ["", "| aim (from the issue) | measured | result |", "|---|---|---|"]
        out += [f"| {t} | {m} | {'PASS' if ok else 'MISS'} |" for t, m, ok in self.aims]
        out += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


# -- the shared workload ------------------------------------------------------------------


def outputs(n: int, size: int = 10 * KB, seed: int = 7) -> list[dict[str, Any]]:
    """*n* realistic step outputs of about *size* bytes (code, logs, diffs, test runs)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        gen = rng.choice(GENERATORS)
        out.append({"kind": gen.__name__, "text": gen(rng, size), "exit_code": 0})
    return out


def with_extra_step(wf: Workflow) -> Workflow:
    """*wf* plus one independent pending step ``extra``: the step updated in the loop
    (rolled back, untimed, after each update, so the workflow keeps its shape)."""
    doc = wf.to_dict()
    template = doc["steps"][-1]
    doc["steps"].append(dict(template, id="extra", name="extra", deps=[]))
    return Workflow.from_dict(doc)


def dir_size(*paths: str) -> int:
    total = 0
    for p in paths:
        for f in Path(p).rglob("*"):
            if f.is_file():
                total += f.stat().st_size
    return total


# -- LangGraph ----------------------------------------------------------------------------


class LangGraph:
    """A ``SqliteSaver`` on a file, as ``SqliteSaver.from_conn_string(path)`` makes it."""

    def __init__(self, path: str) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = path
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()
        self.thread = {"configurable": {"thread_id": "bench", "checkpoint_ns": ""}}
        self.config: dict[str, Any] = self.thread
        self.n = 0

    def pragmas(self) -> str:
        jm = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        return f"journal_mode={jm}, synchronous={_SYNC.get(sync, sync)}"

    def checkpoint(self, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.base.id import uuid6

        self.n += 1
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=self.n))
        cp["channel_values"] = dict(doc)
        versions = {k: self.n for k in doc}
        cp["channel_versions"] = dict(versions)
        return cp, versions

    def put(self, cp: dict[str, Any], versions: dict[str, Any]) -> None:
        meta = {"source": "loop", "step": self.n, "parents": {}}
        self.config = self.saver.put(self.config, cp, meta, versions)  # type: ignore[arg-type]

    def put_writes(self, value: Any, task: str) -> None:
        self.saver.put_writes(self.config, [("output", value)], task)  # type: ignore[arg-type]

    def get(self) -> Any:
        got = self.saver.get_tuple(self.thread)  # type: ignore[arg-type]
        assert got is not None
        return got

    def disk(self) -> int:
        return sum(
            os.path.getsize(self.path + s)
            for s in ("", "-wal", "-shm")
            if os.path.exists(self.path + s)
        )

    def close(self) -> None:
        self.conn.close()


_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


# -- 1. durable step update ---------------------------------------------------------------


def bench_step_update(rep: Report, tmp: str, rounds: int) -> dict[str, Stats]:
    from dbos import DBOS

    pool = outputs(16)
    wf = with_extra_step(make_state(SIZES["1MB"]))
    state = StateDir(os.path.join(tmp, "ours")).ensure()
    store = WorkflowStore(state)
    store.create(wf)
    for k in range(3):  # warm the store's cache and the WAL file
        store.apply(wf.id, op_set_data("warm", k, T0))
    raw = os.path.join(tmp, "raw.wal")
    wal.create(raw, state.temp, kind=wal.KIND_WORKFLOW, generation=1, base_seq=1)
    # The physical floor: the same record bytes written into zero-filled room a file
    # already has, by an fd held open, then fdatasync. No durable write of these bytes
    # costs less on this machine, so no design that flushes each step can beat it.
    floor_fd = os.open(os.path.join(tmp, "floor.bin"), os.O_RDWR | os.O_CREAT, 0o600)
    room = rounds * (max(len(frame.dumps(o)) for o in pool) + 512) + (1 << 20)
    os.write(floor_fd, bytes(room))
    os.fsync(floor_fd)
    floor_at = [0]

    def floor_write(data: bytes) -> None:
        os.pwrite(floor_fd, data, floor_at[0])
        os.fdatasync(floor_fd)
        floor_at[0] += len(data)

    lg = LangGraph(os.path.join(tmp, "lg-step.sqlite"))
    big = make_state(SIZES["1MB"]).to_dict()
    lg.put(*lg.checkpoint(big))
    rep.notes.append(f"LangGraph SqliteSaver SQLite settings (its defaults): {lg.pragmas()}")

    def body(i: int) -> dict[str, Any]:  # the step's own work: hand back its output
        return pool[i % len(pool)]

    step = DBOS.step(name="compare_step")(body)
    times: dict[str, list[float]] = {
        k: []
        for k in ("ours_step", "ours_data", "raw", "floor", "lg_writes", "lg_put", "dbos", "bare")
    }

    order = random.Random(20261122)  # a fresh order each round, the same every run

    def one_round(i: int) -> None:
        out = pool[i % len(pool)]
        op = op_step("extra", "completed", output=out, at=T0)
        op_data = op_set_data("last_output", out, T0)
        payload = frame.dumps(op)
        record = wal.encode_record(1, i + 1, payload)
        cp = lg.checkpoint(big)
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("ours_step", lambda: store.apply(wf.id, op)),
            ("ours_data", lambda: store.apply(wf.id, op_data)),
            ("raw", lambda: wal.append(raw, [payload])),
            ("floor", lambda: floor_write(record)),
            ("lg_writes", lambda: lg.put_writes(out, f"task-{i}")),
            ("lg_put", lambda: lg.put(*cp)),
            ("dbos", lambda: step(i)),
            ("bare", lambda: body(i)),
        ]
        order.shuffle(calls)
        for name, fn in calls:
            times[name].append(timed(fn))
        store.apply(wf.id, op_rollback_steps(1, T0))  # untimed: "extra" is pending again
        if i % 10 == 9:
            import gc

            gc.collect()  # untimed, so garbage does not pile up while timing pauses it

    @DBOS.workflow(name="compare_loop")
    def loop(n: int) -> int:
        for i in range(n):
            one_round(i)
        return n

    dbos_dir = os.path.join(tmp, "dbos")
    os.makedirs(dbos_dir)
    inst = DBOS(
        config={
            "name": "claude-state-compare",
            "system_database_url": f"sqlite:///{dbos_dir}/dbos.sqlite",
            "application_version": "compare-1",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    isolated: dict[str, list[float]] = {"ours_step": [], "raw": [], "lg_put": []}
    try:
        assert loop(rounds) == rounds
        # The same calls again, each system in a loop of its own (same run, no
        # neighbours' flushes in between): the interleaved figures above stay the ones
        # the aims are judged on; these show how much of the gap is the neighbours.
        for i in range(rounds):
            op_i = op_step("extra", "completed", output=pool[i % len(pool)], at=T0)
            isolated["ours_step"].append(timed(lambda op_i=op_i: store.apply(wf.id, op_i)))
            store.apply(wf.id, op_rollback_steps(1, T0))
        iso_payload = frame.dumps(op_step("extra", "completed", output=pool[0], at=T0))
        for _ in range(rounds):
            isolated["raw"].append(timed(lambda: wal.append(raw, [iso_payload])))
        for _ in range(rounds):
            iso_cp = lg.checkpoint(big)
            isolated["lg_put"].append(timed(lambda iso_cp=iso_cp: lg.put(*iso_cp)))
        try:
            import sqlalchemy as sa

            with inst._sys_db.engine.connect() as c:  # one of DBOS's own connections
                jm = c.execute(sa.text("PRAGMA journal_mode")).scalar()
                sync = c.execute(sa.text("PRAGMA synchronous")).scalar()
            rep.notes.append(
                f"DBOS SQLite system database settings (its defaults): journal_mode={jm}, "
                f"synchronous={_SYNC.get(sync, sync)}"  # type: ignore[call-overload]
            )
        except Exception as exc:  # private API: report rather than fail
            rep.notes.append(f"DBOS SQLite settings could not be read: {exc!r}")
    finally:
        DBOS.destroy()
        lg.close()
        os.close(floor_fd)
    got = store.load(wf.id)
    assert got.data["last_output"] == pool[(rounds - 1) % len(pool)]
    assert got.step("extra").attempts == 2 * rounds  # interleaved + isolated

    bare = statistics.median(times["bare"])
    st = {k: stats(v) for k, v in times.items()}
    st["dbos_overhead"] = stats([t - bare for t in times["dbos"]])
    ours = st["ours_step"]
    payload_size = len(frame.dumps(op_step("extra", "completed", output=pool[0], at=T0)))
    label = "durable step update, 1 MB workflow (apply op_step + 10 KB output)"
    rep.row(label + " vs floor", ours, "raw WAL append + fdatasync", st["raw"])
    rep.row(
        label + " vs physical floor",
        ours,
        "pwrite into preallocated room + fdatasync",
        st["floor"],
    )
    rep.row(
        "physical floor (pwrite into preallocated room + fdatasync)",
        st["floor"],
        "LangGraph put (1 MB checkpoint)",
        st["lg_put"],
    )
    rep.row(label, ours, "LangGraph put_writes (10 KB)", st["lg_writes"])
    rep.row(label, ours, "LangGraph put (1 MB checkpoint)", st["lg_put"])
    rep.row(label, ours, "DBOS step overhead", st["dbos_overhead"])
    iso = {k: stats(v) for k, v in isolated.items()}
    rep.row(
        "isolated loops: " + label + " vs floor",
        iso["ours_step"],
        "raw WAL append + fdatasync",
        iso["raw"],
    )
    rep.row(
        "isolated loops: " + label,
        iso["ours_step"],
        "LangGraph put (1 MB checkpoint)",
        iso["lg_put"],
    )
    rep.row(
        "durable data update, 1 MB workflow (apply op_set_data 10 KB)",
        st["ours_data"],
        "raw WAL append + fdatasync",
        st["raw"],
    )
    rep.notes.append(
        f"step update loop: {rounds} iterations inside one DBOS workflow, the calls in a "
        f"fresh seeded random order each iteration; the 1 MB workload state "
        f"({len(wf.steps)} steps) plus one step "
        f"completed with a 10 KB output and rolled back (untimed) each iteration; op "
        f"payload {payload_size:,} B; DBOS step wall "
        f"{fmt_ms(st['dbos'])}, bare call {bare * 1e6:.2f} us (subtracted)"
    )
    return st


# -- 2. save and load ---------------------------------------------------------------------


def bench_save_load(rep: Report, tmp: str, name: str, rounds: int) -> None:
    wf = make_state(SIZES[name])
    doc = wf.to_dict()
    state = StateDir(os.path.join(tmp, f"sl-{name}")).ensure()
    WorkflowStore(state).save(Workflow.from_dict(doc))
    lg = LangGraph(os.path.join(tmp, f"lg-{name}.sqlite"))
    lg.put(*lg.checkpoint(doc))
    save, load, put, get = [], [], [], []
    for i in range(rounds):
        copy = Workflow.from_dict(doc)  # outside the timing, as the peer gets a ready dict
        cp = lg.checkpoint(doc)
        steps: list[tuple[list[float], Callable[[], Any]]] = [
            (save, lambda copy=copy: WorkflowStore(state).save(copy)),
            (put, lambda cp=cp: lg.put(*cp)),
            (load, lambda: WorkflowStore(state).load(wf.id)),
            (get, lg.get),
        ]
        k = i % len(steps)
        for out, fn in steps[k:] + steps[:k]:
            out.append(timed(fn))
    assert WorkflowStore(state).load(wf.id).revision == wf.revision
    assert lg.get().checkpoint["channel_values"]["revision"] == wf.revision
    lg.close()
    rep.row(
        f"save whole state, {name} (WorkflowStore.save)", stats(save), "LangGraph put", stats(put)
    )
    rep.row(
        f"load whole state, {name} (cold WorkflowStore.load)",
        stats(load),
        "LangGraph get_tuple",
        stats(get),
    )


# -- 3. disk used by 100 growing checkpoints ----------------------------------------------


def bench_checkpoint_disk(rep: Report, tmp: str, n: int = 100) -> tuple[int, int]:
    outs = outputs(n, seed=11)
    steps = [{"id": f"s{i:03d}", "deps": [f"s{i - 1:03d}"] if i else []} for i in range(n)]
    wf = parse_definition({"id": "grow", "name": "growing", "steps": steps}, at=T0)
    state = StateDir(os.path.join(tmp, "cp")).ensure()
    store = WorkflowStore(state)
    store.create(wf)
    cps = CheckpointStore(state, store)
    lg = LangGraph(os.path.join(tmp, "lg-cp.sqlite"))
    ours, peer = [], []
    for i in range(n):
        wf = store.apply("grow", op_step(f"s{i:03d}", "completed", output=outs[i], at=T0))
        cp = lg.checkpoint(wf.to_dict())
        if i % 2:
            peer.append(timed(lambda cp=cp: lg.put(*cp)))
            ours.append(timed(lambda wf=wf: cps.create("grow", "post_step", wf=wf)))
        else:
            ours.append(timed(lambda wf=wf: cps.create("grow", "post_step", wf=wf)))
            peer.append(timed(lambda cp=cp: lg.put(*cp)))
    final = len(frame.dumps(wf.to_dict()))
    lg_open = lg.disk()
    lg.close()
    lg_closed = lg.disk()
    mine = dir_size(state.checkpoints, state.blobs)
    wf_files = dir_size(state.workflows)
    rep.row(
        f"checkpoint of a growing state ({n}, 10 KB -> {final / 2**20:.1f} MB)",
        stats(ours),
        "LangGraph put",
        stats(peer),
    )
    rep.rows.append(
        (
            f"disk: {n} checkpoints of a state growing 10 KB a step to {final / 2**20:.2f} MB",
            f"{mine / 2**20:.2f} MB",
            f"LangGraph: {lg_closed / 2**20:.1f} MB",
            f"{lg_closed / mine:.1f}x",
        )
    )
    rep.notes.append(
        f"checkpoint disk: ours = checkpoints/ + blobs/ ({len(cps.ids('grow'))} files, "
        f"full every {cps.full_every}); the workflow's own snapshot + WAL add "
        f"{wf_files / 2**20:.2f} MB. LangGraph = database after close (WAL folded in); "
        f"while open, db + -wal + -shm = {lg_open / 2**20:.1f} MB"
    )
    return mine, lg_closed


# -- 4. import time -----------------------------------------------------------------------


def bench_imports(rep: Report, runs: int) -> None:
    cmds = {
        "pass": "pass",
        "claude_state": "import claude_state",
        "hot": "import claude_state.adapters.claude_code.hot",
        "dbos": "import dbos",
        "langgraph": "import langgraph.checkpoint.sqlite",
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, code in cmds.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[k].append(time.perf_counter() - t)
    st = {k: stats(v) for k, v in times.items()}
    rep.row(
        'process: python -c "import claude_state"',
        st["claude_state"],
        'python -c "import dbos"',
        st["dbos"],
    )
    rep.row(
        "process: import the hook hot path (adapters.claude_code.hot)",
        st["hot"],
        'python -c "import dbos"',
        st["dbos"],
    )
    rep.row(
        'process: python -c "import claude_state"',
        st["claude_state"],
        'python -c "import langgraph.checkpoint.sqlite"',
        st["langgraph"],
    )
    rep.notes.append(
        f"imports: whole processes, {runs} runs each, interleaved; python -c pass "
        f"{fmt_ms(st['pass'])} (editable install: site's .pth processing included)"
    )


# -- 5. recovery after kill -9 ------------------------------------------------------------

_OURS_CHILD = r"""
import json, os, sys, time
from claude_state.domain.store import WorkflowStore
from claude_state.engine.runner import Runner
from claude_state.storage.layout import StateDir
mode, root = sys.argv[1], sys.argv[2]
meta = json.load(open(os.path.join(root, "meta.json")))
def handler(ctx):
    if ctx.step_id == meta["killed"]:
        if mode == "run":
            open(os.path.join(root, "started"), "w").close()
            time.sleep(600)
        with open(os.path.join(root, "resumed.tmp"), "w") as f:
            f.write(repr(time.monotonic()))
        os.replace(os.path.join(root, "resumed.tmp"), os.path.join(root, "resumed"))
    return {"ok": True}
store = WorkflowStore(StateDir(os.path.join(root, "state")))
Runner(store, {s: handler for s in meta["steps"]}).run(meta["wid"])
"""

_DBOS_CHILD = r"""
import os, sys, time
from dbos import DBOS
mode, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
OUT = {"kind": "log", "text": open(os.path.join(root, "payload.txt")).read(), "exit_code": 0}

@DBOS.step()
def work(i):
    return OUT

@DBOS.step()
def slow():
    if mode == "run":
        open(os.path.join(root, "started"), "w").close()
        time.sleep(600)
    with open(os.path.join(root, "resumed.tmp"), "w") as f:
        f.write(repr(time.monotonic()))
    os.replace(os.path.join(root, "resumed.tmp"), os.path.join(root, "resumed"))
    return "done"

@DBOS.workflow()
def flow(n):
    for i in range(n):
        work(i)
    return slow()

DBOS(config={
    "name": "claude-state-compare-recovery",
    "system_database_url": "sqlite:///" + os.path.join(root, "dbos.sqlite"),
    "application_version": "compare-1",
    "log_level": "WARNING",
})
DBOS.launch()
if mode == "run":
    flow(n)
else:  # startup recovery runs on DBOS's threads; leave once the step ran again
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(root, "resumed")) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)
    os._exit(0)
"""


def _wait_for(path: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"child exited {proc.returncode} before {path}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"timed out waiting for {path}")
        time.sleep(0.002)


def _kill_and_restart(root: str, code: str, args: list[str]) -> float:
    """Run *code* until its step starts, SIGKILL it, restart it: seconds from the
    restart's ``Popen`` to the step's body running again."""
    cmd = [sys.executable, "-c", code, "run", root, *args]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(os.path.join(root, "started"), p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t0 = time.monotonic()
    q = subprocess.Popen(
        [sys.executable, "-c", code, "recover", root, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(os.path.join(root, "resumed"), q)
        back = float(Path(root, "resumed").read_text())
        q.wait(timeout=60)
    finally:
        if q.poll() is None:
            q.kill()
            q.wait()
    if p.stderr:
        p.stderr.close()
    if q.stderr:
        q.stderr.close()
    return back - t0


def bench_recovery(rep: Report, tmp: str, rounds: int) -> None:
    import json

    wf = make_state(SIZES["1MB"])
    killed = wf.current_step
    assert killed is not None
    payload = outputs(1)[0]["text"]
    ours, peer = [], []
    for r in range(rounds):
        root = os.path.join(tmp, f"rec-ours-{r}")
        state = StateDir(os.path.join(root, "state")).ensure()
        WorkflowStore(state).create(Workflow.from_dict(wf.to_dict()))
        meta = {"wid": wf.id, "killed": killed, "steps": [s.id for s in wf.steps]}
        Path(root, "meta.json").write_text(json.dumps(meta))
        droot = os.path.join(tmp, f"rec-dbos-{r}")
        os.makedirs(droot)
        Path(droot, "payload.txt").write_text(payload)
        jobs = [
            (ours, lambda root=root: _kill_and_restart(root, _OURS_CHILD, [])),
            (peer, lambda droot=droot: _kill_and_restart(droot, _DBOS_CHILD, ["100"])),
        ]
        for out, fn in jobs if r % 2 == 0 else jobs[::-1]:
            out.append(fn())
        after = WorkflowStore(state).load(wf.id).step(killed)
        assert after.status == "completed" and after.attempts == 2, after
    rep.row(
        "killed mid-step -> step running again in a fresh process (1 MB workflow)",
        stats(ours),
        "DBOS launch + recovery",
        stats(peer),
    )
    rep.notes.append(
        f"recovery: {rounds} rounds, alternating who goes first; ours = Runner.run on the "
        "1 MB workload state (op_interrupt, then the step again); DBOS = a workflow of 100 "
        "steps returning 10 KB each, killed in step 101, recovered by DBOS.launch() with "
        "its default queue polling"
    )


# -- main ---------------------------------------------------------------------------------


def versions() -> str:
    out = []
    for dist in (
        "claude-state",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint",
        "dbos",
        "sqlalchemy",
    ):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs {cpu}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=200, help="step-update iterations")
    ap.add_argument("--recovery-rounds", type=int, default=3)
    ap.add_argument("--import-runs", type=int, default=10)
    ap.add_argument("--out", help="also write the markdown report to this file")
    args = ap.parse_args(argv)
    missing = [m for m in PEERS if importlib.util.find_spec(m.split(".")[0]) is None]
    if not missing:
        missing = [m for m in PEERS if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"missing peer package(s) {', '.join(missing)}: pip install -e '.[compare]'",
            file=sys.stderr,
        )
        return 2
    if os.environ.get("CLAUDE_STATE_FSYNC") == "0":
        print("CLAUDE_STATE_FSYNC=0: the comparison measures durable writes", file=sys.stderr)
        return 2
    rounds = max(10, args.rounds)
    rep = Report()
    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="cs-compare-")
    try:
        st = bench_step_update(rep, tmp, rounds)
        bench_save_load(rep, tmp, "10KB", max(10, rounds // 2))
        bench_save_load(rep, tmp, "1MB", max(5, rounds // 5))
        mine, theirs = bench_checkpoint_disk(rep, tmp)
        bench_imports(rep, args.import_runs)
        bench_recovery(rep, tmp, max(1, args.recovery_rounds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ours = st["ours_step"][0]
    r_put = st["lg_put"][0] / ours
    r_dbos = st["dbos_overhead"][0] / ours
    r_raw = ours / st["raw"][0]
    r_writes = st["lg_writes"][0] / ours
    r_feasible = st["lg_put"][0] / st["floor"][0]
    rep.aim(
        "step update >= 10x faster than LangGraph put (1 MB checkpoint)",
        f"{r_put:.1f}x",
        r_put >= 10,
    )
    rep.aim("step update >= 10x faster than DBOS's step", f"{r_dbos:.1f}x", r_dbos >= 10)
    rep.aim(
        "step update within 2x of the raw WAL append + fdatasync",
        f"{r_raw:.2f}x the floor",
        r_raw <= 2,
    )
    rep.aim(
        "100 growing checkpoints under 2.5 MB on disk", f"{mine / 2**20:.2f} MB", mine < 2.5 * 2**20
    )
    rep.aim(
        "... and at least 20x less than LangGraph (PERFORMANCE.md)",
        f"{theirs / mine:.1f}x less",
        theirs / mine >= 20,
    )
    rep.notes.append(
        f"what the machine allows: the physical floor (one durable write of the same bytes, "
        f"nothing else) is {r_feasible:.1f}x faster than LangGraph's put in this run, so a "
        f"step update that flushes once cannot be more than {r_feasible:.1f}x faster than "
        f"that put here; ours is {ours / st['floor'][0]:.2f}x the physical floor"
    )
    rep.notes.append(
        f"not an aim of the issue, stated for fairness: LangGraph's own per-step write "
        f"(put_writes of the 10 KB output) is {r_writes:.2f}x our step update's median"
    )
    rep.notes.append(f"total run time {time.perf_counter() - started:.0f} s")
    header = [
        "# claude-state vs LangGraph SqliteSaver and DBOS",
        "",
        f"- machine: {machine()}",
        f"- packages: {versions()}",
        "- claude-state: fsync on (fdatasync per WAL append; write + fsync + rename + "
        "directory fsync per snapshot or checkpoint)",
        f"- workload: benchmarks/workload.py (fixed seed); {rounds} step-update rounds",
    ]
    text = rep.markdown(header)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
