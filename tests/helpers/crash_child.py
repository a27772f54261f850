"""Child process for the kill -9 harness (tests/test_crash_kill.py).

Usage: ``crash_child.py MODE STATE_DIR`` with MODE one of ``apply``, ``save``,
``journal``. It continues the counter found on disk, prints ``ready`` and then one
``ack N`` line (flushed) after each operation is durable, forever, until killed.

``CRASH_CHILD_EARLY_ACK=1`` acknowledges *before* the durable write: the negative
control, which the harness must catch as lost acknowledgements.
"""

from __future__ import annotations

import os
import sys
import time

from claude_state.storage.layout import StateDir

T0 = "2025-01-01T00:00:00.000Z"
WID = "wf1"
SID = "sess1"
PAD = "x" * 120  # makes the WAL grow so compaction runs every few dozen ops


def current(mode: str, state: StateDir) -> int:
    if mode == "journal":
        from claude_state.storage import journal

        recs = journal.read(state, SID)
        return int(recs[-1][1].split(b'"i":')[1].split(b",")[0]) if recs else 0
    from claude_state.domain.store import WorkflowStore

    return int(WorkflowStore(state).load(WID).data.get("n", 0))


def main() -> None:
    mode, root = sys.argv[1], sys.argv[2]
    early = os.environ.get("CRASH_CHILD_EARLY_ACK") == "1"
    state = StateDir(root)
    i = current(mode, state)
    out = sys.stdout
    if mode == "journal":
        from claude_state.storage import journal

        def op(n: int) -> None:
            journal.append(state, SID, [journal.wrap(b'{"i":%d,"pad":"%s"}' % (n, PAD.encode()))])
    else:
        from claude_state.domain.ops import op_set_data
        from claude_state.domain.store import WorkflowStore

        store = WorkflowStore(state, compact_bytes=int(os.environ.get("COMPACT_BYTES", "3000")))
        if mode == "apply":

            def op(n: int) -> None:
                store.apply_many(WID, [op_set_data("n", n, T0), op_set_data("pad", PAD, T0)])
        else:

            def op(n: int) -> None:
                wf = store.load(WID)
                wf.data["n"] = n
                wf.data["pad"] = PAD * (n % 7)
                store.save(wf)

    out.write("ready\n")
    out.flush()
    while True:
        i += 1
        if early:
            out.write(f"ack {i}\n")
            out.flush()
            # The acknowledged write reaches the disk a moment later, as it would behind
            # a write-back cache: wide enough a window that the control's kills land in
            # it on a loaded machine too (60 kills once missed a bare early ack).
            time.sleep(0.003)
        op(i)
        if not early:
            out.write(f"ack {i}\n")
            out.flush()


if __name__ == "__main__":
    main()
