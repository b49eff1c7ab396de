"""Ingest throughput through the real API (FastAPI, in-process ASGI client): NDJSON batches vs single
POSTs, on SQLite and PostgreSQL, side by side in one run. Prints alerts/s and per-request p50/p99.

    .venv/bin/python tests/benchmarks/bench_ingest.py        (or: make bench)
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from socflow import migrate
from socflow.api import create_app
from socflow.auth import Role
from socflow.dispatch import NullDispatcher
from socflow.settings import Settings
from tests.api.conftest import make_token
from tests.conftest import POSTGRES_URL, drop_pg_database, new_pg_database

BATCH = 1000
BATCHES = 5
SINGLES = 300


def _alerts(prefix: str, n: int) -> list[dict]:
    return [
        {
            "source": "bench",
            "source_ref": f"{prefix}-{i}",
            "title": f"Alert {i}",
            "severity": "medium",
            "rule": {"id": f"rule-{i % 50}"},
            "entities": {"hosts": [f"host-{i % 400}"], "users": [f"u{i % 900}"]},
            "description": f"powershell.exe -enc ... from 10.0.0.{i % 250}",
        }
        for i in range(n)
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(url: str, label: str) -> dict[str, float]:
    migrate.upgrade(url)
    settings = Settings(database={"url": url}, model={"backend": "scripted"})
    headers = {"Authorization": f"Bearer {make_token(url, Role.ingest)}"}
    out: dict[str, float] = {}
    with TestClient(create_app(settings, dispatcher=NullDispatcher())) as client:
        times = []
        start = time.perf_counter()
        for b in range(BATCHES):
            body = "\n".join(json.dumps(a) for a in _alerts(f"b{b}", BATCH))
            t = time.perf_counter()
            r = client.post(
                "/api/v1/alerts", content=body, headers={**headers, "Content-Type": "application/x-ndjson"}
            )
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        total = time.perf_counter() - start
        out["ndjson_alerts_per_s"] = BATCH * BATCHES / total
        out["ndjson_batch_p50_ms"] = statistics.median(times) * 1000
        out["ndjson_batch_p99_ms"] = _pct(times, 0.99)
        times = []
        start = time.perf_counter()
        for a in _alerts("s", SINGLES):
            t = time.perf_counter()
            r = client.post("/api/v1/alerts", json=a, headers=headers)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        total = time.perf_counter() - start
        out["single_alerts_per_s"] = SINGLES / total
        out["single_p50_ms"] = statistics.median(times) * 1000
        out["single_p99_ms"] = _pct(times, 0.99)
    print(
        f"{label:10s} NDJSON {out['ndjson_alerts_per_s']:7.0f} alerts/s (batch of {BATCH}: p50 "
        f"{out['ndjson_batch_p50_ms']:.0f} ms, p99 {out['ndjson_batch_p99_ms']:.0f} ms) | single POST "
        f"{out['single_alerts_per_s']:5.0f} alerts/s (p50 {out['single_p50_ms']:.1f} ms, "
        f"p99 {out['single_p99_ms']:.1f} ms)"
    )
    return out


def test_bench_ingest() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = run(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite")
    url = new_pg_database()
    try:
        pg = run(url, "PostgreSQL")
    finally:
        drop_pg_database(url)
    pg_ratio = pg["ndjson_alerts_per_s"] / sqlite["ndjson_alerts_per_s"]
    batch_ratio = sqlite["ndjson_alerts_per_s"] / sqlite["single_alerts_per_s"]
    print(f"ratio PostgreSQL/SQLite NDJSON throughput: {pg_ratio:.2f}")
    print(f"ratio NDJSON/single-POST throughput on SQLite: {batch_ratio:.1f}")


if __name__ == "__main__":
    print(f"PostgreSQL at {POSTGRES_URL}")
    test_bench_ingest()
