"""A real local HTTP server standing in for Elasticsearch and Splunk in tests.

Routes are ``(method, path) -> (status, content_type, body)``; every request is recorded (method, path, query,
headers, body) so tests assert what the client sent. Responses have the recorded shapes of the real APIs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class FakeSiemServer:
    routes: dict[tuple[str, str], tuple[int, str, bytes]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str, body: Any, *, status: int = 200, content_type: str = "") -> None:
        if isinstance(body, bytes | str):
            payload = body.encode() if isinstance(body, str) else body
            kind = content_type or "text/plain"
        else:
            payload = json.dumps(body).encode()
            kind = content_type or "application/json"
        self.routes[(method, path)] = (status, kind, payload)


def _handler(server_state: FakeSiemServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server_state.requests.append(
                Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
            )
            status, kind, payload = server_state.routes.get(
                (self.command, parts.path), (404, "application/json", b'{"error": "no route"}')
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


@contextmanager
def fake_siem_server() -> Iterator[FakeSiemServer]:
    state = FakeSiemServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
