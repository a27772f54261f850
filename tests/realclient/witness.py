"""A witness hook: appends every event Claude Code hands it to a log, one JSON line each.

Registered for the same events as claude-state, it is the independent record of what
the client fired, to compare with ``claude-state sessions events``. Standard library
only, no parsing beyond what is needed to stamp the line; always exits 0 with empty
stdout, so it never changes what the client does.

Usage: ``python -I -S witness.py LOGFILE``.
"""

import json
import os
import sys
import time


def main() -> None:
    t = time.time()
    raw = sys.stdin.buffer.read()
    try:
        event = json.loads(raw)
    except ValueError:
        event = {"unparsed": raw.decode("utf-8", "replace")}
    line = json.dumps(
        {"t": t, "pid": os.getpid(), "claude_pid": os.environ.get("CLAUDE_PID"), "ev": event},
        separators=(",", ":"),
    )
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode() + b"\n")  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
