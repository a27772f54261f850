"""A scripted stand-in for the Anthropic Messages API, served on 127.0.0.1.

The real Claude Code client talks to it through ``ANTHROPIC_BASE_URL``. It answers
``POST /v1/messages`` with a streamed (SSE) or plain message in the real API's event
format (``message_start``, ``content_block_start``/``_delta``/``_stop``,
``message_delta``, ``message_stop``), ``POST /v1/messages/count_tokens`` with a token
count, and anything else with a 404 in the API's error shape, so the client's optional
side requests fail fast and quietly. Every request is recorded (method, path, parsed
body) so a test can read what the client sent, e.g. the context a ``SessionStart`` hook
injected.

What to answer is decided by a *script*: the conversation's last plain-text user prompt
must contain a marker ``[[script:NAME]]``; ``scripts[NAME]`` is a list of assistant
turns, and the turn played is the number of assistant messages already sent after that
prompt. So the answer depends only on the request, never on server state, and a resumed
conversation (whose history the client replays) continues where the script says.
Requests without a marker (the client's own side calls: titles, summaries) get a short
text answer.

The server stops itself after ``lifetime`` seconds, whatever the test does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER = re.compile(r"\[\[script:([A-Za-z0-9_-]+)\]\]")
MODEL = "claude-sonnet-4-5-20250929"


@dataclass(frozen=True)
class Text:
    """An assistant text block."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """An assistant ``tool_use`` block; ``id`` is the ``tool_use_id`` hooks will see."""

    id: str
    name: str
    input: dict[str, Any]


Turn = list[Text | ToolUse]


@dataclass
class Request:
    """One request the client made."""

    method: str
    path: str
    body: Any
    at: float
    script: str | None = None
    turn: int | None = None


@dataclass
class FakeAnthropic:
    """The server; use as a context manager (``with FakeAnthropic(scripts) as api``)."""

    scripts: dict[str, list[Turn]]
    lifetime: float = 150.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle --

    def __enter__(self) -> FakeAnthropic:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- what the client sent --

    def record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def scripted(self, name: str | None = None) -> list[Request]:
        """The model requests that played a script (*name*, or any)."""
        return [r for r in self.snapshot() if r.script is not None and name in (None, r.script)]

    # -- deciding the answer --

    def answer(self, body: dict[str, Any]) -> tuple[str | None, int | None, Turn, str]:
        """``(script, turn index, blocks, stop_reason)`` for one ``/v1/messages`` body."""
        messages = body.get("messages") or []
        found = _last_prompt(messages)
        if found is None:
            return None, None, [Text("ok")], "end_turn"
        name, index = found
        turns = self.scripts.get(name)
        if turns is None:
            return name, None, [Text(f"no script named {name}")], "end_turn"
        played = sum(1 for m in messages[index + 1 :] if m.get("role") == "assistant")
        if played >= len(turns):
            return name, played, [Text("done")], "end_turn"
        blocks = turns[played]
        stop = "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn"
        return name, played, blocks, stop


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                yield str(block.get("text", ""))


def _last_prompt(messages: list[dict[str, Any]]) -> tuple[str, int] | None:
    """``(script name, message index)`` of the last user message carrying a marker."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") != "user":
            continue
        for text in _texts(m.get("content")):
            hit = MARKER.search(text)
            if hit:
                return hit.group(1), i
    return None


# -- the wire format ------------------------------------------------------------------------


def _usage(output: int = 0) -> dict[str, int]:
    return {
        "input_tokens": 100,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def sse_events(blocks: Turn, stop: str, msg_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The streamed form of one assistant message, event by event."""
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(1),
            },
        },
    )
    for i, b in enumerate(blocks):
        if isinstance(b, Text):
            start: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": b.text}
        else:
            start = {"type": "tool_use", "id": b.id, "name": b.name, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(b.input)}
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": i, "content_block": start},
        )
        yield "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 10},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def plain_message(blocks: Turn, stop: str, msg_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": b.text}
        if isinstance(b, Text)
        else {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
        for b in blocks
    ]
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(10),
    }


def _handler_for(api: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    counter = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the test reads api.requests instead of a noisy stderr

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _json(self, code: int, doc: Any) -> None:
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", f"req_fake_{next(counter)}")
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self) -> None:
            self._json(
                404,
                {"type": "error", "error": {"type": "not_found_error", "message": "fake API"}},
            )

        def do_GET(self) -> None:
            api.record(Request("GET", self.path, None, time.time()))
            self._not_found()

        def do_HEAD(self) -> None:
            api.record(Request("HEAD", self.path, None, time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self._body()
            path = self.path.split("?", 1)[0]
            req = Request("POST", self.path, body, time.time())
            if path == "/v1/messages/count_tokens":
                api.record(req)
                self._json(200, {"input_tokens": 100})
                return
            if path != "/v1/messages" or not isinstance(body, dict):
                api.record(req)
                self._not_found()
                return
            req.script, req.turn, blocks, stop = api.answer(body)
            api.record(req)
            msg_id = f"msg_fake_{next(counter):04d}"
            if not body.get("stream"):
                self._json(200, plain_message(blocks, stop, msg_id))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("request-id", f"req_fake_{next(counter)}")
            self.end_headers()
            self.close_connection = True
            try:
                for name, data in sse_events(blocks, stop, msg_id):
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed mid-answer: nothing to tell it

    return Handler
