"""Child process for tests/test_concurrency.py.

``conc_child.py MODE STATE_DIR [COUNT]``:

* ``incr``: COUNT read-modify-write increments of data ``n`` (load, pause, apply),
  each under the store's lock of ``wf1-counter``; without the lock updates are lost.
* ``keys``: COUNT applies of distinct data keys (the store's own lock serialises the
  WAL appends and compactions).
* ``reader``: load in a loop until ``STOP`` exists; prints loads and the revisions seen.
* ``hold``: take the lock of ``wf1``, print ``locked`` and sleep.
"""

from __future__ import annotations

import os
import sys
import time

from claude_state.domain.ops import op_set_data
from claude_state.domain.store import WorkflowStore
from claude_state.storage.layout import StateDir

T0 = "2025-01-01T00:00:00.000Z"


def main() -> None:
    mode, root = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    state = StateDir(root)
    store = WorkflowStore(state, compact_bytes=int(os.environ.get("COMPACT_BYTES", "4000")))
    pid = os.getpid()
    if mode == "incr":
        for _ in range(count):
            with store.lock("wf1-counter"):
                n = int(WorkflowStore(state).load("wf1").data.get("n", 0))
                time.sleep(0.002)  # widen the race window
                store.apply("wf1", op_set_data("n", n + 1, T0))
    elif mode == "keys":
        for j in range(count):
            store.apply("wf1", op_set_data(f"p{pid}-{j}", "v" * 40, T0))
    elif mode == "reader":
        loads, last = 0, -1
        stop = os.path.join(root, "STOP")
        while not os.path.exists(stop):
            wf = WorkflowStore(state).load("wf1")
            if wf.revision < last:
                raise SystemExit(f"revision went back: {wf.revision} < {last}")
            last = wf.revision
            loads += 1
        print(f"loads {loads} last {last}", flush=True)
    elif mode == "hold":
        with store.lock("wf1"):
            print("locked", flush=True)
            time.sleep(3600)


if __name__ == "__main__":
    main()
