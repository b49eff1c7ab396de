"""A real local HTTP server that pages alerts the way Elasticsearch and Splunk do, for connector tests.

- ``POST /{index}/_search``: Elastic's search API over ``elastic_docs`` (alert ``_source`` documents): a
  ``range`` filter on ``@timestamp`` (``gt``/``gte``), sort by ``@timestamp`` then ``kibana.alert.uuid``,
  ``search_after`` on the sort values (epoch milliseconds, uuid), ``size``.
- ``POST /services/search/jobs/export``: Splunk's export over ``splunk_rows`` (notable results): reads the
  form's ``search`` (``where _time > T OR (_time = T AND NOT in(event_id, ...))`` and ``head N``), answers
  NDJSON rows ``{"preview": false, "offset": i, "result": {...}}``; the lookback search
  (``where _time >= A AND _time <= B``) too.
- ``raw_pages``: answers sent verbatim, in order, before any computed one (hostile pages: bytes no real
  server would store, such as NaN literals, 5,000-digit numbers, invalid UTF-8, non-object hits).

Every request is recorded (method, path, headers, body). ``required_auth`` makes requests without that
``Authorization`` header get 401; ``fail_with`` answers the next requests with an error status and a body
that echoes the request's ``Authorization`` header (to prove clients never print it).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EXPORT_PATH = "/services/search/jobs/export"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class PagingServer:
    elastic_docs: list[dict[str, Any]] = field(default_factory=list)
    splunk_rows: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    required_auth: str | None = None
    fail_with: list[int] = field(default_factory=list)
    raw_pages: list[bytes] = field(default_factory=list)  # answered verbatim (FIFO) before any search
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- Elastic -------------------------------------------------------------------------------------
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = sorted(self.elastic_docs, key=_elastic_sort)
        for clause in body.get("query", {}).get("bool", {}).get("filter", []):
            bounds = clause.get("range", {}).get("@timestamp")
            if bounds:
                for op, value in bounds.items():
                    limit = _ms(value)
                    docs = [
                        d
                        for d in docs
                        if (_ms(d["@timestamp"]) > limit if op == "gt" else _ms(d["@timestamp"]) >= limit)
                    ]
        after = body.get("search_after")
        if after:
            docs = [d for d in docs if _elastic_sort(d) > (after[0], after[1])]
        page = docs[: int(body.get("size", 10))]
        hits = [
            {
                "_index": ".internal.alerts-security.alerts-default-000001",
                "_id": d["kibana.alert.uuid"],
                "_score": None,
                "_source": d,
                "sort": list(_elastic_sort(d)),
            }
            for d in page
        ]
        return {
            "took": 1,
            "timed_out": False,
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
        }

    # -- Splunk --------------------------------------------------------------------------------------
    def export(self, form: dict[str, str]) -> bytes:
        spl = form["search"]
        rows = sorted(self.splunk_rows, key=lambda r: (float(r["_time"]), r["event_id"]))
        earliest = form.get("earliest_time", "0")
        rows = [r for r in rows if float(r["_time"]) >= float(earliest)]
        window = re.search(r"_time >= ([\d.]+) AND _time <= ([\d.]+)", spl)  # the lookback search
        if window:
            low, high = float(window.group(1)), float(window.group(2))
            rows = [r for r in rows if low <= float(r["_time"]) <= high]
        after = re.search(r"_time > ([\d.]+)", spl)
        if after:
            t = float(after.group(1))
            seen: set[str] = set()
            excluded = re.search(r"NOT in\(event_id, (.*?)\)\)", spl)
            if excluded:
                seen = {s.replace('\\"', '"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', excluded.group(1))}
            rows = [
                r
                for r in rows
                if float(r["_time"]) > t or (float(r["_time"]) == t and r["event_id"] not in seen)
            ]
        head = re.search(r"\| head (\d+)", spl)
        if head:
            rows = rows[: int(head.group(1))]
        lines = [{"preview": False, "offset": i, "result": r} for i, r in enumerate(rows)]
        if lines:
            lines[-1]["lastrow"] = True
        return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _elastic_sort(doc: dict[str, Any]) -> tuple[int, str]:
    return (_ms(doc["@timestamp"]), doc["kibana.alert.uuid"])


def _handler(state: PagingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, kind: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state.lock:
                record = Recorded(self.command, path, dict(self.headers.items()), body)
                state.requests.append(record)
                if state.fail_with:
                    status = state.fail_with.pop(0)
                    echo = json.dumps({"error": "boom", "auth": self.headers.get("Authorization", "")})
                    self._reply(status, "application/json", echo.encode())
                    return
                if state.required_auth and self.headers.get("Authorization") != state.required_auth:
                    self._reply(401, "application/json", b'{"error": "unauthorized"}')
                    return
                if state.raw_pages and (path == EXPORT_PATH or path.endswith("/_search")):
                    self._reply(200, "application/json", state.raw_pages.pop(0))
                elif path == EXPORT_PATH:
                    self._reply(200, "application/json", state.export(record.form()))
                elif path.endswith("/_search"):
                    self._reply(200, "application/json", json.dumps(state.search(record.json())).encode())
                else:
                    self._reply(404, "application/json", b'{"error": "no route"}')

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


@contextmanager
def paging_server() -> Iterator[PagingServer]:
    state = PagingServer()
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
