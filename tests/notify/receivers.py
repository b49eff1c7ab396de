"""Test receivers for notifications: a signed-webhook receiver that verifies the HMAC like a real
receiver would (and refuses a bad signature or a stale timestamp), counts deliveries by delivery id and
drops repeats; it also records Slack incoming-webhook posts at ``/slack``. And a real SMTP server
(aiosmtpd) that keeps the messages it accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

MAX_SKEW = 300  # seconds a signed request's timestamp may be off


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does: recompute the HMAC over ``<timestamp>.<body>`` and check the timestamp."""
    timestamp = headers.get("x-socflow-timestamp", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > MAX_SKEW:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-socflow-signature", ""), f"sha256={expected}")


@dataclass
class Receiver:
    secret: str
    url: str = ""
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id -> body
    seen: Counter[str] = field(default_factory=Counter)  # delivery id -> requests (repeats included)
    refused: int = 0
    slack: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # every request as it came
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = 200
            with state.lock:
                state.raw.append((headers, body))
                if self.path == "/slack":
                    state.slack.append(json.loads(body))
                elif not verify(state.secret, headers, body):
                    state.refused += 1
                    status = 401
                else:
                    delivery = headers.get("x-socflow-delivery", "")
                    state.seen[delivery] += 1
                    state.accepted.setdefault(delivery, json.loads(body))  # a repeat is dropped
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


@contextmanager
def webhook_receiver(secret: str, port: int | None = None) -> Iterator[Receiver]:
    state = Receiver(secret=secret)
    server = ThreadingHTTPServer(("127.0.0.1", port or 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)  # (RCPT TO, message)
    refuse_rcpt: str = ""  # an SMTP reply to every RCPT TO (e.g. "450 mailbox busy"); empty accepts

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 at a free port."""
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
