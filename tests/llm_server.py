"""A loopback OpenAI-compatible server speaking gpt-oss's real wire formats, for tests.

    server = FakeGptOss().start()          # http://127.0.0.1:PORT/v1
    server.script(reasoning_answer(["Hm."], ["Hi [1]."]), http_error(429, retry_after="0"))
    server.script(raw_stream(["{not json"], before=["The sky"]))  # a malformed stream line
    ...
    server.stop()

Each chat request takes the next scripted scenario; with none queued the server plays an
"echo RAG" model (see `FakeGptOss.default_reply`). Every request body is kept in `.requests`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

DEFAULT_USAGE = {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59}
ECHO_REASONING = "Thinking about the sources."


@dataclass
class SSE:
    """A streamed reply: one chunk per delta, a finish, usage, [DONE]; or a failure."""

    deltas: list[dict[str, Any]]
    finish_reason: str | None = "stop"
    usage: dict[str, int] | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    error: dict[str, Any] | None = None  # sent as a {"error": ...} event after the deltas
    drop: Literal["", "chunked", "eof"] = ""  # close the connection after the deltas
    delay: float = 0.0  # seconds to wait before answering
    raw: list[str | bytes] = field(default_factory=list)  # sent as-is, one `data:` line
    # each, after the deltas (before the error, the drop or the finish): e.g. "{not json"
    pause: float = 0.0  # seconds to wait after the deltas and raw lines: a stalled stream
    flood: tuple[str, int] = ("", 0)  # (text, times): that many content deltas of the text,
    # made as they are sent (after the deltas): a server ignoring max_tokens


@dataclass
class JSONReply:
    """A plain JSON reply: a non-streamed completion or an HTTP error."""

    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: str | None = None  # sent as the body instead of `body`: e.g. "{not json"


Scenario = SSE | JSONReply


def reasoning_answer(reasoning: list[str], content: list[str], *, field: str = "reasoning",
                     finish_reason: str = "stop") -> SSE:
    """Reasoning deltas in `field` (reasoning | reasoning_content), then content deltas."""
    deltas = [{field: part} for part in reasoning] + [{"content": part} for part in content]
    return SSE(deltas, finish_reason=finish_reason)


def content_stream(parts: list[str]) -> SSE:
    """Content deltas only, e.g. raw harmony markup as llama.cpp sends it unparsed."""
    return SSE([{"content": part} for part in parts])


def tool_call_stream(name_parts: list[str], argument_parts: list[str], *,
                     call_id: str = "call_abc123", repeat_name: bool = False,
                     repeat_id: bool = False, index: int = 0, reasoning: str = "") -> SSE:
    """One streamed tool call: the name (maybe split, maybe repeated), then split arguments."""
    deltas: list[dict[str, Any]] = [{"reasoning": reasoning}] if reasoning else []
    name = "".join(name_parts)
    for n, part in enumerate(name_parts):
        call: dict[str, Any] = {"index": index, "type": "function",
                                "function": {"name": part, "arguments": ""}}
        if n == 0 or repeat_id:
            call["id"] = call_id
        deltas.append({"tool_calls": [call]})
    for part in argument_parts:
        call = {"index": index, "function": {"arguments": part}}
        if repeat_name:
            call["function"]["name"] = name
            call["type"] = "function"
        if repeat_id:
            call["id"] = call_id
        deltas.append({"tool_calls": [call]})
    return SSE(deltas, finish_reason="tool_calls")


def raw_stream(lines: list[str | bytes], *, before: list[str] | None = None,
               finish_reason: str | None = "stop") -> SSE:
    """Content deltas `before`, then each of `lines` sent verbatim as a `data:` line (a
    malformed or oddly shaped chunk), then the finish, usage and [DONE] as usual."""
    return SSE([{"content": part} for part in before or []], raw=list(lines),
               finish_reason=finish_reason)


def huge_answer(chars: int, *, piece: str = "All work and no play. ") -> SSE:
    """An answer of about `chars` characters, made while it is sent (the server's memory stays
    small), ignoring max_tokens; then the finish as usual."""
    return SSE([], flood=(piece, -(-chars // len(piece))))


def completion(content: str, *, reasoning: str | None = None, model: str = "gpt-oss-20b",
               finish_reason: str = "stop") -> JSONReply:
    """A non-streamed chat.completion."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning"] = reasoning
    return JSONReply({
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": dict(DEFAULT_USAGE)})


def http_error(status: int, message: str, *, type: str = "invalid_request_error",
               code: str | None = None, param: str | None = None,
               headers: dict[str, str] | None = None) -> JSONReply:
    """An HTTP error with OpenAI's error JSON body."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONReply(body, status=status, headers=headers or {})


def rate_limited(retry_after: str | None = "0", *, retry_after_ms: str | None = None
                 ) -> JSONReply:
    """429 with Retry-After (seconds) and/or retry-after-ms."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return http_error(429, "Rate limit reached for requests", type="rate_limit_exceeded",
                      code="rate_limit_exceeded", headers=headers)


def context_too_long(tokens: int = 9000, limit: int = 8192) -> JSONReply:
    """vLLM's 400 for a prompt longer than the context window."""
    return http_error(400, f"This model's maximum context length is {limit} tokens. However, "
                      f"you requested {tokens} tokens in the messages. Please reduce the "
                      "length of the messages.", code="context_length_exceeded")


def model_not_found(model: str) -> JSONReply:
    """404 for an unknown model, as vLLM and OpenAI send it."""
    return http_error(404, f"The model `{model}` does not exist.", type="NotFoundError",
                      code="model_not_found")


EMBEDDING_DIMENSION = 8


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/embeddings: a vector of EMBEDDING_DIMENSION numbers per input, made from its
    SHA-256 (the same text, the same vector), for tests that store many chunks quickly."""
    inputs = body.get("input") or []
    inputs = [inputs] if isinstance(inputs, str) else inputs
    data = []
    for index, text in enumerate(inputs):
        digest = hashlib.sha256(str(text).encode()).digest()
        vector = [byte / 255 + 0.01 for byte in digest[:EMBEDDING_DIMENSION]]
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {"object": "list", "data": data, "model": body.get("model", ""),
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}


def echo_quote(text: str) -> str:
    """The quote the echo model takes from a message: 60 chars after its first [1]."""
    after = text.split("[1]", 1)[1] if "[1]" in text else ""
    return " ".join(after.split())[:60]


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


class FakeGptOss:
    """The loopback server; `script()` queues scenarios, `.requests` holds request bodies."""

    def __init__(self, models: list[str] | None = None) -> None:
        self.models: list[str] | None = models if models is not None else [
            "gpt-oss-20b", "openai/gpt-oss-20b", "gpt-oss:20b"]
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._queue: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT/v1"""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeGptOss:
        """Listen on a free loopback port in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeGptOss:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *scenarios: Scenario) -> None:
        """Queue scenarios; each chat request consumes one, in order."""
        with self._lock:
            self._queue.extend(scenarios)

    def reset(self) -> None:
        """Forget queued scenarios and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.paths.clear()
            self.headers.clear()

    @property
    def chat_requests(self) -> int:
        """How many chat completion requests arrived."""
        return len(self.requests)

    def _next(self, body: dict[str, Any]) -> Scenario:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                return self._queue.popleft()
        return self.default_reply(body)

    def default_reply(self, body: dict[str, Any]) -> Scenario:
        """The echo RAG model.

        Streamed, with tools and no tool result yet: one `search_knowledge_base` call with
        {"query": <last user message>, "k": 3}, arguments split over chunks. Otherwise the
        reasoning delta "Thinking about the sources." and an answer citing [1] that quotes
        `echo_quote()` of the last tool/user/system message holding a "[1]". Non-streamed:
        the last line of the last user message, minus a "User:" prefix (a query rewrite).
        """
        messages: list[dict[str, Any]] = body.get("messages") or []
        users = [_text_of(m) for m in messages if m.get("role") == "user"]
        last_user = users[-1] if users else ""
        if not body.get("stream"):
            lines = [line for line in last_user.strip().splitlines() if line.strip()]
            rewrite = lines[-1].strip().removeprefix("User:").strip() if lines else ""
            return completion(rewrite, reasoning="Rewriting the follow-up.",
                              model=body.get("model", ""))
        has_tool_result = any(m.get("role") == "tool" for m in messages)
        if body.get("tools") and not has_tool_result:
            args = json.dumps({"query": last_user, "k": 3})
            parts = [args[i:i + 7] for i in range(0, len(args), 7)]
            return tool_call_stream(["search_knowledge_base"], parts,
                                    call_id=f"call_{uuid.uuid4().hex[:8]}",
                                    reasoning="I should search the knowledge base.")
        source = ""
        for message in reversed(messages):
            if message.get("role") in ("tool", "user", "system") and "[1]" in _text_of(message):
                source = _text_of(message)
                break
        if source:
            answer = f'According to [1], "{echo_quote(source)}".'
        else:
            answer = "I found no numbered sources to cite."
        words = answer.split(" ")
        content = [w + " " for w in words[:-1]] + [words[-1]]
        return SSE([{"reasoning": ECHO_REASONING}] + [{"content": c} for c in content])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (a timeout test, a closed stream) is expected; others print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeGptOss

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _record(self) -> None:
        self.fake.paths.append(f"{self.command} {self.path}")
        self.fake.headers.append({k.lower(): v for k, v in self.headers.items()})

    def do_GET(self) -> None:
        """GET /v1/models."""
        self._record()
        if self.path.rstrip("/") != "/v1/models" or self.fake.models is None:
            self._json(404, {"error": {"message": "Not Found", "type": "not_found_error",
                                       "param": None, "code": None}})
            return
        self._json(200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": 1754000000, "owned_by": "local"}
            for name in self.fake.models]})

    def do_POST(self) -> None:
        """POST /v1/chat/completions."""
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") == "/v1/embeddings":
            self._json(200, embeddings(json.loads(raw)))
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"Not Found: {self.path}",
                                       "type": "not_found_error", "param": None,
                                       "code": None}})
            return
        body = json.loads(raw or b"{}")
        scenario = self.fake._next(body)
        time.sleep(scenario.delay)
        if isinstance(scenario, JSONReply):
            self._json(scenario.status, scenario.body, scenario.headers, raw=scenario.raw)
        else:
            self._stream(scenario, body)

    def _json(self, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None, *, raw: str | None = None) -> None:
        data = (json.dumps(body) if raw is None else raw).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, sse: SSE, body: dict[str, Any]) -> None:
        chunked = sse.drop != "eof"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        def send(data: str | bytes) -> None:
            payload = b"data: " + (data.encode() if isinstance(data, str) else data) + b"\n\n"
            if chunked:
                payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
            self.wfile.write(payload)
            self.wfile.flush()

        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", ""),
                "system_fingerprint": "fp_fake_gpt_oss"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return json.dumps({**base, "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        send(chunk({"role": "assistant", "content": ""}))
        for delta in sse.deltas:
            send(chunk(delta))
        text, times = sse.flood
        for _ in range(times):
            send(chunk({"content": text}))
        for line in sse.raw:
            send(line)
        time.sleep(sse.pause)
        if sse.drop:
            self.close_connection = True  # no terminating chunk: the body is cut short
            return
        if sse.error is not None:
            send(json.dumps({"error": sse.error}))
        else:
            if sse.finish_reason is not None:
                send(chunk({}, sse.finish_reason))
            include = (body.get("stream_options") or {}).get("include_usage")
            if sse.usage is not None and include:
                send(json.dumps({**base, "choices": [], "usage": sse.usage}))
        send("[DONE]")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
