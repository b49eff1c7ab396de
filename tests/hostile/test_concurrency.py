"""4,000 requests at concurrency 50 (half one identical alert, half distinct alerts) against a real
``socflow serve`` on SQLite and PostgreSQL: no error, exactly one row per distinct alert (issue 17,
defect 5: SQLite answered "database is locked" and left the first item of a failed chunk committed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.tables import Alert
from tests.api.conftest import make_token

REQUESTS = 4000
CONCURRENCY = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alert(ref: str) -> bytes:
    body = {"source": "load", "source_ref": ref, "title": "load test", "severity": "low"}
    body["entities"] = {"hosts": [f"h-{ref}"]}
    return json.dumps(body).encode()


@pytest.mark.slow
def test_4000_requests_at_concurrency_50(db_url: str, tmp_path: Path) -> None:
    token = make_token(db_url, Role.ingest)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCFLOW_")}
    env |= {
        "SOCFLOW_DATABASE__URL": db_url,
        "SOCFLOW_MODEL__BACKEND": "none",
        "SOCFLOW_SIEM__PATH": str(tmp_path / "siem.db"),
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "socflow", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        bodies = [_alert("same") if i % 2 == 0 else _alert(f"d-{i}") for i in range(REQUESTS)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        with httpx.Client(base_url=base, headers=headers, timeout=120, limits=limits) as client:

            def send(body: bytes) -> str:
                try:
                    r = client.post("/api/v1/alerts", content=body)
                except httpx.HTTPError as exc:
                    return type(exc).__name__
                return str(r.status_code) if r.status_code != 200 else r.json()["items"][0]["status"]

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                outcomes = Counter(pool.map(send, bodies))
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    assert set(outcomes) <= {"accepted", "duplicate"}, outcomes
    assert outcomes["accepted"] == REQUESTS // 2 + 1, outcomes
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = s.scalar(select(func.count(Alert.id)).where(Alert.source == "load"))
        same = s.scalar(select(func.count(Alert.id)).where(Alert.source_ref == "same"))
    engine.dispose()
    assert (rows, same) == (REQUESTS // 2 + 1, 1)
    assert "Traceback" not in (tmp_path / "serve.log").read_text(errors="replace")
