"""Hand-written fakes of the write-back APIs nothing real of installs here (Kibana, Splunk ES), plus a
webhook receiver. Each refuses what the vendor's documented shape does not allow, so a client that drifts
from the documentation fails its test.

- Kibana ``POST /api/detection_engine/signals/status`` (Kibana detection-engine API, "Set a detection
  alert status"): needs the ``kbn-xsrf`` header and JSON; the body's keys are among ``signal_ids``,
  ``query``, ``status``, ``conflicts``; exactly one of ``signal_ids`` (a non-empty list of strings) and
  ``query``; ``status`` one of ``open``, ``closed``, ``acknowledged``, ``in-progress``. Answers 200 with
  ``{"updated": n, "total": n, "failures": []}``; 400 otherwise. Statuses land in ``signals``.
- Splunk ES ``POST /services/notable_update`` (Splunk ES REST API ``notable_update``): form-encoded; the
  fields are among ``ruleUIDs`` (repeatable), ``searchID``, ``newOwner``, ``urgency``, ``status``,
  ``comment``, ``disposition``, ``output_mode``; needs ``ruleUIDs`` or ``searchID``; ``status`` an integer
  id, ``urgency`` a Splunk urgency word; something to change. Answers ``{"success": true, "message": ...,
  "details": {}}``; 400 with ``"success": false`` otherwise. Updates land in ``notables``.
- ``POST /hook``: a webhook receiver; requests land in ``hooks``.

Every endpoint needs an ``Authorization`` header (401 without); ``fail_with`` answers the next requests
with those statuses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

KIBANA_PATH = "/api/detection_engine/signals/status"
NOTABLE_PATH = "/services/notable_update"
KIBANA_KEYS = {"signal_ids", "query", "status", "conflicts"}
KIBANA_STATUS = {"open", "closed", "acknowledged", "in-progress"}
NOTABLE_KEYS = {
    "ruleUIDs",
    "searchID",
    "newOwner",
    "urgency",
    "status",
    "comment",
    "disposition",
    "output_mode",
}
URGENCY = {"informational", "low", "medium", "high", "critical"}


@dataclass
class WritebackServer:
    url: str = ""
    signals: dict[str, str] = field(default_factory=dict)
    notables: dict[str, dict[str, str]] = field(default_factory=dict)
    hooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _kibana(state: WritebackServer, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    if "kbn-xsrf" not in headers:
        return 400, {
            "statusCode": 400,
            "error": "Bad Request",
            "message": "Request must contain a kbn-xsrf header.",
        }
    if not headers.get("content-type", "").startswith("application/json"):
        return 415, {"statusCode": 415, "message": "Unsupported Media Type"}
    try:
        doc = json.loads(body)
    except ValueError:
        return 400, {"statusCode": 400, "message": "invalid JSON"}
    if not isinstance(doc, dict) or set(doc) - KIBANA_KEYS:
        return 400, {"statusCode": 400, "message": f"unknown keys {sorted(set(doc) - KIBANA_KEYS)}"}
    if doc.get("status") not in KIBANA_STATUS:
        return 400, {"statusCode": 400, "message": "status: expected open, closed, acknowledged, in-progress"}
    ids = doc.get("signal_ids")
    if ("query" in doc) == (ids is not None):
        return 400, {"statusCode": 400, "message": "exactly one of signal_ids and query"}
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        return 400, {"statusCode": 400, "message": "signal_ids: a non-empty list of strings"}
    for i in ids:
        state.signals[i] = doc["status"]
    return 200, {"updated": len(ids), "total": len(ids), "failures": [], "version_conflicts": 0}


def _notable(state: WritebackServer, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return 400, {"success": False, "message": "expected a form-encoded body"}
    form = parse_qs(body.decode(), keep_blank_values=True)
    unknown = set(form) - NOTABLE_KEYS
    if unknown:
        return 400, {"success": False, "message": f"unknown parameters {sorted(unknown)}"}
    uids = form.get("ruleUIDs", [])
    if not uids and "searchID" not in form:
        return 400, {"success": False, "message": "ruleUIDs or searchID is required"}
    one = {k: v[-1] for k, v in form.items() if k != "ruleUIDs"}
    if "status" in one and not one["status"].isdigit():
        return 400, {"success": False, "message": "status must be a status id (integer)"}
    if "urgency" in one and one["urgency"] not in URGENCY:
        return 400, {"success": False, "message": "invalid urgency"}
    if not ({"status", "urgency", "newOwner", "comment", "disposition"} & set(one)):
        return 400, {"success": False, "message": "nothing to update"}
    for uid in uids:
        state.notables.setdefault(uid, {}).update({k: v for k, v in one.items() if k != "output_mode"})
    return 200, {"success": True, "message": f"{len(uids)} event(s) updated successfully", "details": {}}


def _handler(state: WritebackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                if state.fail_with:
                    self._send(state.fail_with.pop(0), {"error": "injected"})
                    return
                if "authorization" not in headers:
                    self._send(401, {"error": "unauthorized"})
                    return
                if self.path == KIBANA_PATH:
                    code, answer = _kibana(state, headers, body)
                elif self.path == NOTABLE_PATH:
                    code, answer = _notable(state, headers, body)
                elif self.path == "/hook":
                    state.hooks.append((headers, body))
                    code, answer = 200, {"ok": True}
                else:
                    code, answer = 404, {"error": "no such endpoint"}
                if code >= 400:
                    state.refused.append(f"{self.path}: {answer}")
            self._send(code, answer)

        def _send(self, code: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def writeback_server() -> Iterator[WritebackServer]:
    state = WritebackServer()
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
