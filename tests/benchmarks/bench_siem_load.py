"""Embedded SIEM at scale: load N generated Windows events, then time entity queries (issue 6 acceptance).

    .venv/bin/python tests/benchmarks/bench_siem_load.py [--events 1000000] [--hosts 5000] [--users 20000]
        [--days 30] [--queries 500] [--db PATH] [--keep]

Events are Sysmon process creations (EventID 1), network connections (3) and Security logons (4624) with
uniformly random host, user, process and time over the window, normalized and inserted through the same path
as real logs (``EmbeddedSiem.insert_events``: ECS columns + raw JSON + content-hash id) in batches, with the
entity indexes dropped during the load and built afterwards (index build time is included in the load time).
Prints load throughput, database size, and entity-query latency p50/p95 (target: p95 < 50 ms for host + 1 h).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.siem.embedded import EmbeddedSiem  # noqa: E402
from tools.siem.models import EntityQuery  # noqa: E402

SYSMON = "Microsoft-Windows-Sysmon/Operational"
IMAGES = [
    "C:\\Windows\\System32\\cmd.exe",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\explorer.exe",
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Windows\\System32\\rundll32.exe",
    "C:\\Windows\\System32\\whoami.exe",
    "C:\\Windows\\System32\\net.exe",
]
START = datetime(2025, 1, 1, tzinfo=UTC)
HUNT_RULE = r"""
title: Whoami Execution
id: 11111111-1111-4111-8111-111111111111
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
level: low
"""


def generate(rng: random.Random, n: int, hosts: int, users: int, days: int) -> list[dict]:
    span = days * 86400
    out = []
    for _ in range(n):
        host = f"WS{rng.randrange(hosts):05d}.corp.local"
        user = f"user{rng.randrange(users):05d}"
        when = (START + timedelta(seconds=rng.random() * span)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kind = rng.random()
        image = rng.choice(IMAGES)
        if kind < 0.6:
            event = {
                "EventID": 1,
                "Channel": SYSMON,
                "Provider_Name": "Microsoft-Windows-Sysmon",
                "Computer": host,
                "TimeCreated": when,
                "EventRecordID": rng.randrange(1 << 40),
                "Image": image,
                "CommandLine": f'"{image}" /c task {rng.randrange(1 << 20)}',
                "User": f"CORP\\{user}",
                "ParentImage": "C:\\Windows\\explorer.exe",
                "Hashes": f"SHA256={rng.getrandbits(256):064X}",
            }
        elif kind < 0.85:
            event = {
                "EventID": 3,
                "Channel": SYSMON,
                "Provider_Name": "Microsoft-Windows-Sysmon",
                "Computer": host,
                "TimeCreated": when,
                "EventRecordID": rng.randrange(1 << 40),
                "Image": image,
                "User": f"CORP\\{user}",
                "SourceIp": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "DestinationIp": f"93.184.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "DestinationPort": 443,
            }
        else:
            event = {
                "EventID": 4624,
                "Channel": "Security",
                "Provider_Name": "Microsoft-Windows-Security-Auditing",
                "Computer": host,
                "TimeCreated": when,
                "EventRecordID": rng.randrange(1 << 40),
                "TargetUserName": user,
                "TargetDomainName": "CORP",
                "LogonType": rng.choice([2, 3, 10]),
                "IpAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            }
        out.append(event)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_queries(siem: EmbeddedSiem, make: object, count: int) -> tuple[float, float, float]:
    latencies = []
    rows = 0
    for _ in range(count):
        query = make()  # type: ignore[operator]
        t = time.perf_counter()
        rows += len(siem.search(query))
        latencies.append((time.perf_counter() - t) * 1000)
    return percentile(latencies, 0.5), percentile(latencies, 0.95), rows / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    workdir = tempfile.TemporaryDirectory(prefix="bench-siem-")
    db = args.db or Path(workdir.name) / "siem.db"
    rng = random.Random(args.seed)
    print(f"events={args.events:,} hosts={args.hosts:,} users={args.users:,} days={args.days} db={db}")

    siem = EmbeddedSiem(db)
    siem.drop_indexes()
    gen_seconds = 0.0
    load_start = time.perf_counter()
    done = 0
    while done < args.events:
        n = min(args.batch, args.events - done)
        t = time.perf_counter()
        batch = generate(rng, n, args.hosts, args.users, args.days)
        gen_seconds += time.perf_counter() - t
        siem.insert_events(batch, source="generated")
        done += n
    t = time.perf_counter()
    siem.create_indexes()
    siem._conn.execute("ANALYZE")
    siem._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index_seconds = time.perf_counter() - t
    load_seconds = time.perf_counter() - load_start - gen_seconds
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    print(f"stored: {siem.count():,} events")
    print(
        f"load: {load_seconds:.1f} s (index build {index_seconds:.1f} s included; "
        f"generation {gen_seconds:.1f} s not counted) -> {args.events / load_seconds:,.0f} events/s"
    )
    print(f"database size: {size / 1e6:,.0f} MB ({size / args.events:,.0f} bytes/event)")

    span = args.days * 86400 - 3600

    def window() -> tuple[datetime, datetime]:
        since = START + timedelta(seconds=rng.random() * span)
        return since, since + timedelta(hours=1)

    def host_hour() -> EntityQuery:
        since, until = window()
        return EntityQuery(
            host=f"WS{rng.randrange(args.hosts):05d}.corp.local", since=since, until=until, limit=100
        )

    def user_day() -> EntityQuery:
        since, _ = window()
        return EntityQuery(
            user=f"user{rng.randrange(args.users):05d}", since=since, until=since + timedelta(days=1)
        )

    def host_all() -> EntityQuery:
        return EntityQuery(host=f"WS{rng.randrange(args.hosts):05d}.corp.local", limit=100)

    def process_hour() -> EntityQuery:
        since, until = window()
        return EntityQuery(process="whoami.exe", since=since, until=until, limit=100)

    print(f"entity queries ({args.queries} each, random entities/windows):")
    for name, make in (
        ("host + 1 h window", host_hour),
        ("user + 1 day window", user_day),
        ("host, no window, limit 100", host_all),
        ("process + 1 h window, limit 100", process_hour),
    ):
        p50, p95, mean_rows = time_queries(siem, make, args.queries)
        print(f"  {name:34s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({mean_rows:.1f} rows avg)")
    t = time.perf_counter()
    hits = siem.hunt(HUNT_RULE, limit=1000)
    print(
        f"sigma hunt (process_creation, Image endswith whoami.exe, full scan): "
        f"{(time.perf_counter() - t) * 1000:,.0f} ms, {len(hits)} hits (limit 1000)"
    )
    siem.close()
    if args.keep and args.db is None:
        print(f"kept {db}")
        return
    workdir.cleanup()


if __name__ == "__main__":
    main()
