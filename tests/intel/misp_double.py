"""A local HTTP test double of MISP's ``POST /attributes/restSearch`` (not MISP: no MISP runs here).

It answers the documented request shape (JSON body with ``value``, ``type``, ``to_ids``, ``limit``;
the automation key in ``Authorization``) with attributes in MISP's answer shape
(``{"response": {"Attribute": [...]}}``) from the ``attributes`` it holds, and records every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class MispTestDouble:
    api_key: str
    attributes: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    url: str = ""


@contextmanager
def serve_misp_double(double: MispTestDouble) -> Iterator[MispTestDouble]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            double.requests.append(
                {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
            )
            if self.headers.get("Authorization") != double.api_key:
                return self._send(403, {"message": "Authentication failed."})
            if self.path != "/attributes/restSearch":
                return self._send(404, {"message": "not found"})
            if double.status != 200:
                return self._send(double.status, {"message": "error"})
            types = set(body.get("type") or [])
            hits = [
                a
                for a in double.attributes
                if body.get("value") in str(a["value"]).split("|") and (not types or a["type"] in types)
            ]
            self._send(200, {"response": {"Attribute": hits[: int(body.get("limit") or 20)]}})

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    double.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
