"""Child process for tests/test_engine.py: runs a workflow whose second step records
deterministic values, prints them, then blocks until it is killed."""

import sys
import time

from claude_state.domain.store import WorkflowStore
from claude_state.engine import Runner
from claude_state.storage.layout import StateDir

state_dir, mode = sys.argv[1], sys.argv[2]
store = WorkflowStore(StateDir(state_dir).ensure())


def first(ctx):
    return "one"


def second(ctx):
    values = [ctx.now(), ctx.random(), ctx.uuid()]
    print("VALUES", repr(values), flush=True)
    if mode == "hang":
        time.sleep(3600)
    return values


wf = Runner(store, {"a": first, "b": second}).start(
    {"id": "det", "steps": [{"id": "a"}, {"id": "b", "deps": ["a"]}]}
)
print("DONE", wf.status, flush=True)
