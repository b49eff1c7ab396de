"""Shared pieces of the response-action tests: a real HTTP webhook receiver, a catalog file, and the
scripted model's proposal rule (it picks observables by their ``[O#]`` labels, as a model would)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from socflow.model.scripted import ScriptedModel, ScriptRule
from tests.workflows.triage_helpers import scripted_rules

SECRET_ENV = "SOCFLOW_TEST_ACTION_HOOK_SECRET"
SECRET = "action-hook-secret-0123456789"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_ok(self, secret: str = SECRET) -> bool:
        stamp = self.headers.get("x-socflow-timestamp", "")
        mac = hmac.new(secret.encode(), stamp.encode() + b"." + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-socflow-signature", ""), "sha256=" + mac)


@dataclass
class HttpReceiver:
    """A real HTTP server on a free local port that records every request and answers ``reply``."""

    url: str
    requests: list[Received] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=lambda: {"id": "ticket-4711", "status": "accepted"})
    routes: dict[tuple[str, str], Any] = field(default_factory=dict)  # (method, path prefix) -> reply


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    state: dict[str, HttpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recv = state["r"]
            recv.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            reply = recv.reply
            for (m, prefix), answer in recv.routes.items():
                if m == method and self.path.startswith(prefix):
                    reply = answer
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["r"] = HttpReceiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()


def catalog_file(
    tmp: Path, hook_url: str, actions: tuple[str, ...] = ("isolate_host", "disable_user")
) -> Path:
    path = tmp / "actions.yaml"
    lines = [
        "connectors:",
        "  hook:",
        "    type: webhook",
        f"    url: {hook_url}/hooks/socflow",
        f"    secret_env: {SECRET_ENV}",
        "actions:",
        *[f"  {a}: {{connector: hook}}" for a in actions],
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_OBS = re.compile(r"\[(O[0-9]+)\] (\w+) (\S+)")
_EV = re.compile(r"\[(E[0-9]+)\] ([^\n]*)")


def proposing(*wanted: tuple[str, str, str]) -> Any:
    """A scripted reply proposing ``(action, observable kind, value)`` triples, each on the observable's
    label and citing the evidence lines that mention the value."""

    def reply(messages: Any, method: str, schema: Any) -> dict[str, Any]:
        prompt = "\n".join(m["content"] for m in messages)
        labels = {(kind, value): label for label, kind, value in _OBS.findall(prompt)}
        evidence = _EV.findall(prompt)
        out = []
        for action, kind, value in wanted:
            label = labels.get((kind, value.lower())) or labels.get((kind, value))
            if label is None:
                continue
            cites = [e for e, text in evidence if value.lower() in text.lower()][:3] or ["E1"]
            out.append({"action": action, "target": label, "evidence": cites})
        return {"actions": out}

    return reply


def proposing_model(*wanted: tuple[str, str, str]) -> ScriptedModel:
    rules = [ScriptRule(proposing(*wanted), node="propose_actions", method="generate_structured")]
    return ScriptedModel(rules + scripted_rules())


MALICIOUS_ALERT: dict[str, Any] = {
    "source": "edr",
    "source_ref": "mal-1",
    "title": "Credential dumping tool mimikatz.exe on WS-ACME-07",
    "severity": "critical",
    "description": "mimikatz.exe ran on host WS-ACME-07 as user jdoe and read lsass memory",
    "rule": {"id": "r-mimikatz", "name": "Mimikatz execution", "tags": ["attack.t1003.001"]},
    "entities": {
        "hosts": ["WS-ACME-07"],
        "users": ["jdoe"],
        "ips": ["10.9.8.7"],
        "processes": ["mimikatz.exe"],
    },
}
