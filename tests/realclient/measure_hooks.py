"""Hook timings as the real Claude Code client reports them, for docs/real-client.md.

Runs N scripted sessions (a Bash call, a Read, a failing Bash call) of the real client
against the fake API, with claude-state and the witness hook installed, and prints, per
event, the median time the client's debug log gives for each hook command ("Hooks: EVENT
[command] finished with status 0 (N ms)"): claude-state's against the witness's (a
minimal Python hook on the same interpreter), and their ratio.

Usage (from the repository root, in its environment)::

    python tests/realclient/measure_hooks.py [SESSIONS]

Not a test: timings on a shared machine are for reading, not for asserting.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from test_real_claude_code import scripts  # noqa: E402

from realclient.fake_api import FakeAnthropic  # noqa: E402
from realclient.harness import Sandbox, hook_runs, new_sid  # noqa: E402
from realclient.install import claude_code  # noqa: E402


def main(sessions: int) -> None:
    ours: dict[str, list[int]] = {}
    witness: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="measure-hooks.") as tmp:
        root = Path(tmp)
        with FakeAnthropic(scripts(root / "project"), lifetime=60 + 30 * sessions) as api:
            sb = Sandbox(root, claude_code(), api.url)
            try:
                for i in range(sessions):
                    debug = root / f"debug-{i}.log"
                    agent = sb.run(
                        "Do the chores. [[script:tools]]",
                        sid=new_sid(),
                        extra=("--debug-file", str(debug)),
                    )
                    if agent.proc.returncode != 0:
                        raise SystemExit(f"session {i} failed: {agent.stderr()[-1000:]}")
                    for event, command, status, ms in hook_runs(debug):
                        if status != 0:
                            raise SystemExit(f"{event} hook exited {status}: {command}")
                        mine = "claude_state" in command or "claude-state" in command
                        (ours if mine else witness).setdefault(event, []).append(ms)
            finally:
                sb.close()
    print(f"{sessions} sessions; medians of the client's own hook timings (ms)\n")
    print("| event | claude-state | witness | ratio |")
    print("|---|---|---|---|")
    for event, values in ours.items():
        median = statistics.median(values)
        base = statistics.median(witness.get(event) or [0])
        ratio = f"{median / base:.1f}x" if base else "-"
        print(f"| `{event}` (n={len(values)}) | {median:.0f} | {base:.0f} | {ratio} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
