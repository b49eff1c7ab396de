"""A real local HTTP server standing in for a vLLM OpenAI-compatible server (>= 0.12) in tests.

It serves ``/v1/chat/completions``, ``/v1/completions`` and ``/tokenize`` on 127.0.0.1 at an ephemeral
port, checks every request against the exact shape socflow's endpoint backend must send (unknown or missing
keys, the removed ``guided_*`` fields, a malformed ``response_format``), answers a checked-out request with
HTTP 400 and notes it in ``violations``; tests assert ``violations == []``.

Answers: ``server.queue(path, Reply(...), ...)`` queues answers for a path, used first in, first out (for
retry and failure sequences); with none queued, ``server.responders[path](request_json)`` answers. A
``Reply`` can be a status (``503``), slow (``delay`` seconds before answering) or raw bytes (invalid JSON).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_KEYS_REQUIRED = {"model", "messages", "max_tokens", "temperature"}
CHAT_KEYS_ALLOWED = CHAT_KEYS_REQUIRED | {"repetition_penalty", "response_format", "structured_outputs"}
COMPLETION_KEYS_REQUIRED = {"model", "prompt", "echo", "logprobs", "max_tokens"}
COMPLETION_KEYS_ALLOWED = COMPLETION_KEYS_REQUIRED | {"temperature"}
TOKENIZE_KEYS_ALLOWED = {"model", "prompt", "messages", "add_special_tokens", "add_generation_prompt"}


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    delay: float = 0.0
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


def chat_reply(content: str, *, prompt_tokens: int = 11, completion_tokens: int = 5) -> Reply:
    """A vLLM chat completion answer carrying ``content``."""
    return Reply(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def tokenize_text(text: str) -> list[int]:
    """The fake server's tokenizer: one token per character (its code point)."""
    return [ord(c) for c in text]


def echo_logprobs_reply(prompts: list[list[int]], logprob: Callable[[int, int], float] | None) -> Reply:
    """A vLLM completion answer with echoed prompt log-probabilities (``logprob(position, token)``);
    ``logprob=None`` answers without them, as a server that does not offer them."""
    choices = []
    for i, ids in enumerate(prompts):
        logprobs = None
        if logprob is not None:
            values: list[float | None] = [None] + [logprob(p, t) for p, t in enumerate(ids) if p > 0]
            logprobs = {
                "tokens": [chr(t) for t in ids] + ["x"],
                "token_logprobs": [*values, -0.5],
                "top_logprobs": None,
                "text_offset": list(range(len(ids) + 1)),
            }
        choices.append({"index": i, "text": "x", "logprobs": logprobs, "finish_reason": "length"})
    return Reply({"id": "cmpl-test", "object": "text_completion", "model": "test-model", "choices": choices})


class OpenAICompatServer:
    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Seen] = []
        self.violations: list[str] = []
        self.queued: dict[str, deque[Reply]] = {}
        self.responders: dict[str, Callable[[Any], Reply]] = {
            "/tokenize": self._tokenize,
        }
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.queued.setdefault(path, deque()).extend(replies)

    def seen(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    @staticmethod
    def _tokenize(body: Any) -> Reply:
        if "messages" in body:
            text = "".join(f"<{m['role']}>{m['content']}" for m in body["messages"]) + "<assistant>"
        else:
            text = body["prompt"]
        return Reply({"count": len(text), "max_model_len": 4096, "tokens": tokenize_text(text)})

    # -- shape checks --------------------------------------------------------------------------------------

    def check(self, path: str, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return [f"{path}: body is not a JSON object"]
        problems: list[str] = []
        if any(k.startswith("guided_") for k in body) or "extra_body" in body:
            problems.append(f"{path}: removed or client-only fields {sorted(body)}")
        if path == "/v1/chat/completions":
            problems += _keys(path, body, CHAT_KEYS_REQUIRED, CHAT_KEYS_ALLOWED)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                problems.append(f"{path}: messages must be a non-empty list")
            else:
                for m in messages:
                    if set(m) != {"role", "content"} or m["role"] not in ("system", "user", "assistant"):
                        problems.append(f"{path}: bad message {m!r}")
            if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
                problems.append(f"{path}: max_tokens must be a positive integer")
            if body.get("temperature") != 0:
                problems.append(f"{path}: decisions are greedy (temperature 0)")
            if "response_format" in body and "structured_outputs" in body:
                problems.append(f"{path}: response_format and structured_outputs together")
            if "response_format" in body:
                fmt = body["response_format"]
                schema = fmt.get("json_schema", {}) if isinstance(fmt, dict) else {}
                if (
                    fmt.get("type") != "json_schema"
                    or set(schema) != {"name", "schema", "strict"}
                    or schema.get("strict") is not True
                    or not isinstance(schema.get("schema"), dict)
                ):
                    problems.append(f"{path}: bad response_format {fmt!r}")
            if "structured_outputs" in body:
                so = body["structured_outputs"]
                if not isinstance(so, dict) or set(so) != {"choice"} or not isinstance(so["choice"], list):
                    problems.append(f"{path}: bad structured_outputs {so!r}")
        elif path == "/v1/completions":
            problems += _keys(path, body, COMPLETION_KEYS_REQUIRED, COMPLETION_KEYS_ALLOWED)
            prompts = body.get("prompt")
            if not isinstance(prompts, list) or not all(
                isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompts
            ):
                problems.append(f"{path}: prompt must be a list of token-id lists")
            if body.get("echo") is not True or not isinstance(body.get("logprobs"), int):
                problems.append(f"{path}: scoring needs echo=true and integer logprobs")
        elif path == "/tokenize":
            problems += _keys(path, body, {"model"}, TOKENIZE_KEYS_ALLOWED)
            if ("prompt" in body) == ("messages" in body):
                problems.append(f"{path}: exactly one of prompt and messages")
        return problems

    def answer(self, path: str, body: Any) -> Reply:
        with self._lock:
            queued = self.queued.get(path)
            if queued:
                return queued.popleft()
        responder = self.responders.get(path)
        if responder is None:
            return Reply({"error": {"message": f"no route {path}"}}, status=404)
        return responder(body)


def _keys(path: str, body: dict[str, Any], required: set[str], allowed: set[str]) -> list[str]:
    problems = []
    if missing := required - set(body):
        problems.append(f"{path}: missing {sorted(missing)}")
    if extra := set(body) - allowed:
        problems.append(f"{path}: unexpected {sorted(extra)}")
    return problems


def _handler(state: OpenAICompatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # vLLM's /v1/models names each model's context length (max_model_len)
            self._send(Reply({"object": "list", "data": [{"id": "test-model", "max_model_len": 4096}]}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            state.requests.append(Seen(self.path, dict(self.headers.items()), body))
            problems = state.check(self.path, body)
            if problems:
                state.violations.extend(problems)
                self._send(Reply({"error": {"message": "; ".join(problems)}}, status=400))
                return
            reply = state.answer(self.path, body)
            if reply.delay and state.stopping.wait(reply.delay):
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def openai_compat_server() -> Iterator[OpenAICompatServer]:
    state = OpenAICompatServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
