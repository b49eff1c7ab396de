"""A real OpenSearch-API server for the tests: ``osmem-server`` (PyPI ``osmem-server``, an independent Go
implementation of the OpenSearch REST API, in memory), started on a free port, stoppable and restartable
on the same port. Tests talk to it with httpx, like socflow does.

It cannot start -> the test FAILS (never skips): the server is a pinned dev dependency, not a service.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str:
    try:
        from osmem_server import resolve_binary
    except ImportError:  # pragma: no cover - the dev extra is not installed
        pytest.fail("osmem-server is not installed (pip install osmem-server; it is in the dev extra)")
    return str(resolve_binary())


class OpenSearchServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = workdir / f"osmem-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary(), "-addr", f"127.0.0.1:{self.port}", "-no-stdin-watch"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                pytest.fail(f"osmem-server did not start on port {self.port}:\n{text}", pytrace=False)
            time.sleep(0.1)

    def up(self) -> bool:
        try:
            return httpx.get(self.url + "/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    # -- data ------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.url + path, timeout=10, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def create_index(self, index: str, properties: dict[str, Any]) -> None:
        self.request("PUT", f"/{index}", json={"mappings": {"properties": properties}})

    def bulk_index(self, index: str, docs: Iterable[tuple[str, dict[str, Any]]]) -> None:
        lines = []
        for doc_id, doc in docs:
            lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(doc))
        answer = self.request(
            "POST",
            "/_bulk?refresh=true",
            content=("\n".join(lines) + "\n").encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert answer["errors"] is False, answer

    def get(self, index: str, doc_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/{index}/_doc/{doc_id}"))


ALERT_MAPPING = {
    "@timestamp": {"type": "date"},
    "kibana.alert.uuid": {"type": "keyword"},
    "kibana.alert.workflow_status": {"type": "keyword"},
    "kibana.alert.rule.name": {"type": "keyword"},
    "kibana.alert.rule.rule_id": {"type": "keyword"},
    "kibana.alert.severity": {"type": "keyword"},
    "host.name": {"type": "keyword"},
    "user.name": {"type": "keyword"},
}

EVENT_MAPPING = {
    "@timestamp": {"type": "date"},
    "host.name": {"type": "keyword"},
    "user.name": {"type": "keyword"},
    "process.name": {"type": "keyword"},
    "process.command_line": {"type": "keyword"},
    "event.code": {"type": "keyword"},
    "source.ip": {"type": "ip"},
}
