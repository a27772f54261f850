"""A throw-away world for the real Claude Code client: HOME, project, hooks, processes.

:class:`Sandbox` builds a temporary HOME and a git project with claude-state installed
as its hooks (``claude-state install``, run with the interpreter running the tests) plus
a witness hook (``witness.py``) for the same events, given to the client through
``--settings``. :meth:`Sandbox.start` runs ``claude`` in print mode against a
:class:`~realclient.fake_api.FakeAnthropic` server; every process it starts is tagged
through its environment, and :meth:`Sandbox.close` kills every tagged process (the
client, its hooks, the Bash children it leaves behind), also when a test failed.

Nothing here talks to any host but 127.0.0.1: the client's non-essential traffic is
switched off, and any other connection it tries goes through ``HTTPS_PROXY`` to a
:class:`Blackhole` on 127.0.0.1, which notes the request line (``CONNECT host:443``) and
hangs up. (With non-essential traffic on, 2.1.332 tries ``api.anthropic.com:443``
directly, whatever ``ANTHROPIC_BASE_URL`` says; with it off it tries nothing.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

HERE = Path(__file__).resolve().parent
WITNESS = HERE / "witness.py"
TAG = "CLAUDE_STATE_E2E_TAG"
T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll *fn* until it returns something truthy; fail saying *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


#: A hook run as the client's ``--debug-file`` log reports it.
HOOK_DONE = re.compile(r"Hooks: (\w+)(?::\S*)? \[(.*)\] finished with status (\d+) \((\d+)ms\)")


def hook_runs(debug_log: Path) -> list[tuple[str, str, int, int]]:
    """``(event, command, exit status, ms)`` of every hook run the client's debug log
    reports (the client's own timing of each hook command, start to exit)."""
    out = []
    for line in debug_log.read_text(errors="replace").splitlines():
        m = HOOK_DONE.search(line)
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4))))
    return out


def new_sid() -> str:
    return str(uuid.uuid4())


class Blackhole:
    """A proxy on 127.0.0.1 that forwards nothing: it records each request line, closes."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue  # the accept timeout: check the stop flag
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(1024)
                except OSError:
                    head = b""
                self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@dataclass
class Agent:
    """One running ``claude`` process."""

    proc: subprocess.Popen[bytes]
    sid: str | None
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"claude (pid {self.pid}) still running after {timeout:.0f} s\n"
                f"stderr: {self.stderr()[-2000:]}"
            ) from None

    def kill9(self) -> None:
        """SIGKILL the client process only, as a crash does: its children live on."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def messages(self) -> list[dict[str, Any]]:
        """The ``--output-format stream-json`` lines printed so far."""
        out = []
        for line in self.stdout().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class Sandbox:
    """A temporary HOME and project wired for claude-state and the witness hook."""

    root: Path
    claude: Path
    api_url: str
    agents: list[Agent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.project = self.root / "project"
        self.witness_log = self.root / "witness.jsonl"
        self.tag = f"{self.root}:{os.getpid()}"
        self.blackhole = Blackhole()
        try:
            self._build()
        except BaseException:
            self.blackhole.close()
            raise

    def _build(self) -> None:
        self.home.mkdir()
        self.project.mkdir()
        subprocess.run(["git", "init", "-q", str(self.project)], check=True, timeout=30)
        (self.project / "notes.txt").write_text("the launch code is in the other file\n")
        # A long tool call. Claude Code refuses a bare `sleep 60` as a Bash command
        # ("Blocked: standalone sleep"), so the long step is a script, as a slow build is.
        (self.project / "slow_build.sh").write_text("echo building\nsleep 60\necho built\n")
        p = self.cli("install")
        assert p.returncode == 0, p.stderr
        self.install_message = p.stdout
        self.events = self.hooked_events()
        assert "SessionStart" in self.events and "PreToolUse" in self.events, self.events
        witness_cmd = f"{_q(sys.executable)} -I -S {_q(str(WITNESS))} {_q(str(self.witness_log))}"
        handler = {"type": "command", "command": witness_cmd, "timeout": 30}
        hooks: dict[str, list[dict[str, Any]]] = {}
        for ev, matcher in self.events.items():  # the same events, the same matchers
            group: dict[str, Any] = {"hooks": [handler]}
            if matcher is not None:
                group["matcher"] = matcher
            hooks[ev] = [group]
        self.witness_settings = self.root / "witness-settings.json"
        self.witness_settings.write_text(json.dumps({"hooks": hooks}, indent=2))

    # -- claude-state --

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``claude-state`` (this interpreter's) in the project."""
        return subprocess.run(
            [sys.executable, "-m", "claude_state", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.project,
            env=self.env(),
        )

    def cli_json(self, *args: str) -> Any:
        p = self.cli("--json", *args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        return json.loads(p.stdout)

    def settings_files(self) -> list[Path]:
        d = self.project / ".claude"
        return [p for p in (d / "settings.json", d / "settings.local.json") if p.exists()]

    def hooked_events(self) -> dict[str, str | None]:
        """Every event claude-state's installed settings hook into, with the matcher of
        its entry (``None`` for none), in file order."""
        out: dict[str, str | None] = {}
        for path in self.settings_files():
            for ev, groups in json.loads(path.read_text()).get("hooks", {}).items():
                for g in groups:
                    cmds = [h.get("command", "") for h in g.get("hooks", [])]
                    if any("claude_state" in c or "claude-state" in c for c in cmds):
                        out.setdefault(ev, g.get("matcher"))
        return out

    def state_dir(self) -> Path:
        return self.project / ".claude" / "state"

    # -- the client --

    def env(self) -> dict[str, str]:
        """A clean environment: nothing of the caller's Claude Code or API settings."""
        path = os.pathsep.join(
            dict.fromkeys(
                [
                    str(Path(sys.executable).parent),  # claude-state's environment, activated
                    str(Path(shutil.which("node") or "/usr/bin/node").parent),
                    "/usr/local/bin",
                    "/usr/bin",
                    "/bin",
                ]
            )
        )
        env = {
            "PATH": path,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.root),
            "ANTHROPIC_BASE_URL": self.api_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
            # Anything else the client tries goes nowhere, and is noted.
            "HTTPS_PROXY": self.blackhole.url,
            "HTTP_PROXY": self.blackhole.url,
            "NO_PROXY": "127.0.0.1,localhost",
            TAG: self.tag,
        }
        if os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"  # Claude Code refuses to skip permissions as root otherwise
        return env

    def start(
        self,
        prompt: str,
        *,
        sid: str | None = None,
        resume: str | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str | None] | None = None,
    ) -> Agent:
        """Start ``claude -p PROMPT`` (a new session *sid*, or ``--resume`` *resume*);
        *env* changes the environment (``None`` removes a variable)."""
        environ = self.env()
        for k, v in (env or {}).items():
            if v is None:
                environ.pop(k, None)
            else:
                environ[k] = v
        args = [
            str(self.claude),
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
            "--settings",
            str(self.witness_settings),
            *extra,
        ]
        if sid is not None:
            args += ["--session-id", sid]
        if resume is not None:
            args += ["--resume", resume]
        n = len(self.agents)
        out, err = self.root / f"claude-{n}.out", self.root / f"claude-{n}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                args,
                cwd=self.project,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                start_new_session=True,
            )
        agent = Agent(proc, sid or resume, out, err)
        self.agents.append(agent)
        return agent

    def run(self, prompt: str, timeout: float = 60.0, **kw: Any) -> Agent:
        """Start and wait for the client to exit."""
        agent = self.start(prompt, **kw)
        agent.wait(timeout)
        return agent

    # -- what the hooks saw --

    def witnessed(self, sid: str | None = None) -> list[dict[str, Any]]:
        """The witness log's lines (of session *sid*), in the order they were appended."""
        if not self.witness_log.exists():
            return []
        lines = [json.loads(ln) for ln in self.witness_log.read_text().splitlines() if ln]
        return [ln for ln in lines if sid is None or ln["ev"].get("session_id") == sid]

    def witnessed_pre_tool(self, sid: str, tool_use_id: str) -> dict[str, Any] | None:
        for ln in self.witnessed(sid):
            ev = ln["ev"]
            if ev.get("hook_event_name") == "PreToolUse" and ev.get("tool_use_id") == tool_use_id:
                return ln
        return None

    def recorded(self, sid: str) -> list[dict[str, Any]]:
        """``claude-state sessions events SID --json`` ([] while the session is unknown)."""
        p = self.cli("--json", "sessions", "events", sid)
        if p.returncode == 3:
            return []
        assert p.returncode == 0, p.stderr
        rows: list[dict[str, Any]] = json.loads(p.stdout)
        return rows

    def transcript(self, sid: str) -> Path | None:
        hits = list((self.home / ".claude" / "projects").glob(f"*/{sid}.jsonl"))
        return hits[0] if hits else None

    # -- cleaning up --

    def tagged(self) -> list[psutil.Process]:
        """Every live process started in this sandbox (found by the tag in its env)."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.environ().get(TAG) == self.tag:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        return found

    def close(self) -> None:
        """Kill every process of this sandbox: clients, hooks, left-behind tool children."""
        for agent in self.agents:
            if agent.proc.poll() is None:
                try:
                    os.killpg(agent.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.tagged():
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        for agent in self.agents:
            try:
                agent.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        psutil.wait_procs(self.tagged(), timeout=5)
        self.blackhole.close()


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)
