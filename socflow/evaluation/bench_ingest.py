"""``socflow bench``'s API ingest figures (issue 18): NDJSON through the real API (FastAPI, in-process ASGI
client), each against a raw insert of the same rows measured in the same run.

Two loads, on SQLite and (given a PostgreSQL URL) PostgreSQL:

- ``open``: N alerts with N distinct hosts, each opening a case (case, alert, observables, queued run, audit
  events);
- ``storm``: N alerts from 20 incidents (20 cases; every other alert joins one).

The raw comparator copies exactly the rows the API run wrote (cases, alerts, observables, runs, audit
events, read back from its database) into a fresh migrated database with the driver's ``executemany``
(sqlite3 / psycopg), one transaction, no ORM and no socflow code: the floor a set-based writer can reach.
``ratio_to_raw`` is API alerts/s over raw alerts/s (1.0 would be as fast as the raw insert).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from socflow import migrate
from socflow.auth import Role, hash_token, new_token
from socflow.db import make_engine, session_factory
from socflow.schemas import now_utc
from socflow.settings import Settings
from socflow.store import CaseStore
from socflow.tables import Alert, AuditEvent, Case, Observable, WorkflowRun

INCIDENTS = 20
BATCH = 1000  # alerts per POST
TABLES = ("cases", "alerts", "observables", "workflow_runs", "audit_events")  # in foreign-key order


def open_alert(i: int, *, run: str) -> dict[str, Any]:
    """An alert that opens its own case (its host is its own)."""
    return {
        "source": "bench",
        "source_ref": f"{run}-open-{i}",
        "title": f"Encoded PowerShell on host-{i}",
        "severity": "medium",
        "rule": {"id": f"rule-{i % 50}", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [f"host-{i}"], "users": [f"u{i % 900}"]},
        "description": f"powershell.exe -enc JABzAD0A from 10.0.{i // 250 % 250}.{i % 250}",
    }


def storm_alert(i: int, *, run: str) -> dict[str, Any]:
    """Alert ``i`` of a storm from ``INCIDENTS`` incidents (one rule, host and user per incident)."""
    k = i % INCIDENTS
    return {
        "source": "bench",
        "source_ref": f"{run}-storm-{i}",
        "title": f"Encoded PowerShell (incident {k})",
        "severity": "high",
        "rule": {"id": f"rule-{k % 7}", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [f"WS{k:03d}"], "users": [f"user{k:03d}"], "processes": ["powershell.exe"]},
        "description": "powershell.exe -enc JABzAD0ATgBlAHcA launched by winword.exe",
    }


@contextmanager
def database(kind: str, workdir: Path, postgres_url: str | None, name: str) -> Iterator[str]:
    """A fresh migrated database (SQLite file in ``workdir``, or a new PostgreSQL database dropped after)."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'{name}.db'}"
        migrate.upgrade(url)
        yield url
        return
    assert postgres_url is not None
    db = f"socflow_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(postgres_url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
        url = make_url(postgres_url).set(database=db).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def _token(url: str) -> str:
    raw = new_token()
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        CaseStore(session).create_token(
            name="bench-ingest",
            role=Role.ingest.value,
            token_hash=hash_token(raw),
            prefix=raw[:10],
            actor="bench",
        )
    engine.dispose()
    return raw


def api_ingest(url: str, alerts: list[dict[str, Any]]) -> float:
    """Seconds to POST ``alerts`` as NDJSON batches of ``BATCH`` through the API (runs queued, not run)."""
    from fastapi.testclient import TestClient  # httpx: the API's test client, imported when benched

    from socflow.api import create_app
    from socflow.dispatch import NullDispatcher

    settings = Settings(database={"url": url}, model={"backend": "none"})
    headers = {"Authorization": f"Bearer {_token(url)}", "Content-Type": "application/x-ndjson"}
    bodies = [
        "\n".join(json.dumps(a) for a in alerts[lo : lo + BATCH]) for lo in range(0, len(alerts), BATCH)
    ]
    with TestClient(create_app(settings, dispatcher=NullDispatcher())) as client:
        started = time.perf_counter()
        for body in bodies:
            r = client.post("/api/v1/alerts", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"ingest refused: {r.status_code} {r.text[:200]}")
        return time.perf_counter() - started


def _rows(url: str) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row of the ingest tables, as the driver returns them."""
    engine = make_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                result = conn.exec_driver_sql(f"SELECT * FROM {table}")
                out[table] = (list(result.keys()), [tuple(r) for r in result])
    finally:
        engine.dispose()
    return out


def raw_insert(kind: str, url: str, rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> float:
    """Seconds to insert ``rows`` with the driver's ``executemany`` in one transaction."""
    if kind == "sqlite":
        import sqlite3

        path = make_url(url).database
        assert path is not None
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        try:
            started = time.perf_counter()
            with conn:
                for table in TABLES:
                    cols, values = rows[table]
                    marks = ",".join("?" for _ in cols)
                    conn.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({marks})", values)
            return time.perf_counter() - started
        finally:
            conn.close()
    import psycopg
    from psycopg.types.json import Json

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as pg:
        wrapped = {
            table: (cols, [tuple(Json(v) if isinstance(v, dict | list) else v for v in r) for r in values])
            for table, (cols, values) in rows.items()
        }
        started = time.perf_counter()
        with pg.transaction(), pg.cursor() as cur:
            for table in TABLES:
                cols, values = wrapped[table]
                marks = ",".join("%s" for _ in cols)
                cur.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({marks})", values)
        return time.perf_counter() - started


def _count(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return {
                t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (Case, Alert, Observable, WorkflowRun, AuditEvent)
            }
    finally:
        engine.dispose()


def measure(kind: str, load: str, n: int, workdir: Path, postgres_url: str | None) -> dict[str, Any]:
    make: Callable[..., dict[str, Any]] = open_alert if load == "open" else storm_alert
    run = now_utc().strftime("%H%M%S")
    alerts = [make(i, run=run) for i in range(n)]
    with database(kind, workdir, postgres_url, f"ingest-{load}") as url:
        api_s = api_ingest(url, alerts)
        counts = _count(url)
        rows = _rows(url)
    with database(kind, workdir, postgres_url, f"raw-{load}") as raw_url:
        raw_s = raw_insert(kind, raw_url, rows)
    api_rate, raw_rate = n / api_s, n / raw_s
    return {
        "alerts": n,
        "cases": counts["cases"],
        "runs": counts["workflow_runs"],
        "rows_written": sum(counts.values()),
        "api_alerts_per_s": api_rate,
        "raw_executemany_alerts_per_s": raw_rate,
        "ratio_to_raw": api_rate / raw_rate if raw_rate else 0.0,
    }


def ingest_figures(workdir: Path, n: int = 10_000, postgres_url: str | None = None) -> dict[str, Any]:
    """The ``ingest`` step of ``socflow bench``: open and storm loads on SQLite and PostgreSQL."""
    figures: dict[str, Any] = {}
    kinds = ["sqlite"] + (["postgresql"] if postgres_url else [])
    for kind in kinds:
        for load in ("open", "storm"):
            for key, value in measure(kind, load, n, workdir, postgres_url).items():
                figures[f"{kind}_{load}_{key}"] = value
    if not postgres_url:
        figures["postgresql"] = "skipped: no --postgres-url"
    return figures
