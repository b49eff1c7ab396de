"""SIEM throughput for ``socflow bench``: generated Windows events loaded and queried in the embedded store.

Events are Sysmon process creations (EventID 1) and Security logons (4624) with random host, user and time
over one day, inserted through ``EmbeddedSiem.insert_events`` (the path real logs take) with the entity
indexes dropped during the load and rebuilt after it (included in the time).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import EntityQuery

START = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 5000


def generate(rng: random.Random, n: int, *, hosts: int = 500, users: int = 2000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(n):
        host = f"WS{rng.randrange(hosts):05d}.corp.local"
        user = f"user{rng.randrange(users):05d}"
        when = (START + timedelta(seconds=rng.random() * 86400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if rng.random() < 0.7:
            out.append(
                {
                    "EventID": 1,
                    "Channel": "Microsoft-Windows-Sysmon/Operational",
                    "Computer": host,
                    "TimeCreated": when,
                    "EventRecordID": rng.randrange(1 << 40),
                    "Image": "C:\\Windows\\System32\\cmd.exe",
                    "CommandLine": f"cmd.exe /c task {rng.randrange(1 << 20)}",
                    "User": f"CORP\\{user}",
                }
            )
        else:
            out.append(
                {
                    "EventID": 4624,
                    "Channel": "Security",
                    "Computer": host,
                    "TimeCreated": when,
                    "EventRecordID": rng.randrange(1 << 40),
                    "TargetUserName": user,
                    "LogonType": 3,
                    "IpAddress": f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                }
            )
    return out


def siem_throughput(
    workdir: Path, events: int = 100_000, queries: int = 200, seed: int = 7
) -> dict[str, float]:
    """Load ``events`` generated events and time ``queries`` host + 1 h entity queries."""
    rng = random.Random(seed)
    data = generate(rng, events)
    path = workdir / "bench-siem.db"
    with EmbeddedSiem(path) as siem:
        started = time.perf_counter()
        siem.drop_indexes()
        for i in range(0, len(data), BATCH):
            siem.insert_events(data[i : i + BATCH], source="generated")
        siem.create_indexes()
        load_s = time.perf_counter() - started
        latencies = []
        for _ in range(queries):
            host = f"WS{rng.randrange(500):05d}.corp.local"
            since = START + timedelta(seconds=rng.random() * 82800)
            query = EntityQuery(host=host, since=since, until=since + timedelta(hours=1), limit=100)
            t = time.perf_counter()
            siem.search(query)
            latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "events": float(events),
        "ingest_events_per_s": events / load_s,
        "ingest_seconds": load_s,
        "query_per_s": queries / sum(latencies),
        "query_p50_ms": latencies[len(latencies) // 2] * 1000,
        "query_p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "db_bytes_per_event": path.stat().st_size / events,
    }
