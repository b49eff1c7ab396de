"""An alert storm on the Celery path: runs and model calls per alert, database bytes per alert before and
after ``socflow db prune``.

    .venv/bin/python -m pytest tests/benchmarks/bench_storm.py -s [--distinct N --storm N --workers N]
    (or make bench)

PostgreSQL (``SOCFLOW_TEST_POSTGRES_URL``), a Redis server of its own on a free port, real worker processes
with the scripted model. Ingests N distinct alerts plus a storm of M alerts that group into one case, waits
until every run awaits approval, approves every case (in-process), then prunes the finished runs'
checkpoint history. Prints figures; asserts only the counts.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from socflow.db import make_engine, session_factory
from socflow.decisions import Decision, submit_decision
from socflow.prune import PG_TABLES, database_bytes, prune_checkpoints
from socflow.tables import Alert, Case, ModelCall, WorkflowRun
from tests.workers.conftest import (
    Fleet,
    RedisServer,
    alert,
    ingester,
    run_counts,
    settings_env,
    wait_for,
    worker_settings,
)
from tests.workflows.triage_helpers import make_runner, scripted
from workers.dispatch import CeleryDispatcher
from workers.routing import INGEST, WORKFLOWS

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]


DISTINCT, STORM, WORKERS = 150, 50, 2


def checkpoint_bytes(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return sum(
            int(conn.scalar(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}) or 0)
            for t in PG_TABLES
        )


@pytest.mark.timeout(1800)
def test_storm_benchmark(pg_url: str, tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir)
    redis.start()
    logdir = tmp_path / "logs"
    logdir.mkdir()
    settings = worker_settings(pg_url, redis.url, tmp_path)
    fleet = Fleet(env=settings_env(settings), logdir=logdir)
    try:
        for i in range(WORKERS):
            fleet.worker(
                f"w{i}", "--queues", f"{INGEST},{WORKFLOWS}", "--pool", "threads", "--concurrency", "2"
            )
        dispatcher = CeleryDispatcher(settings)
        service = ingester(settings, dispatcher)
        started = time.monotonic()
        storm = [alert(10_000 + i, host="WS-STORM", ref=f"storm-{i}") for i in range(STORM)]
        distinct = [alert(i) for i in range(DISTINCT)]
        for batch in (storm, *[distinct[i : i + 50] for i in range(0, DISTINCT, 50)]):
            service.ingest_text("\n".join(json.dumps(a) for a in batch), actor="bench")
        ingest_s = time.monotonic() - started

        def finished() -> bool:
            fleet.alive()
            return run_counts(settings).get("awaiting_input", 0) == DISTINCT + 1

        wait_for(finished, 900, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=1.0)
        triage_s = time.monotonic() - started
        dispatcher.shutdown()
    finally:
        fleet.stop_all()
        redis.stop()

    engine = make_engine(pg_url)
    factory = session_factory(engine)
    with factory() as s:
        alerts = int(s.scalar(select(func.count(Alert.id))) or 0)
        cases = list(s.scalars(select(Case.id)))
        runs = int(s.scalar(select(func.count(WorkflowRun.id))) or 0)
        calls = int(s.scalar(select(func.count(ModelCall.id))) or 0)
    assert alerts == DISTINCT + STORM and len(cases) == runs == DISTINCT + 1
    runner = make_runner(settings, scripted())
    started = time.monotonic()
    for case_id in cases:
        submit_decision(runner, case_id, Decision(action="approve", user="bench"))
    approve_s = time.monotonic() - started
    db_before, cp_before = database_bytes(engine), checkpoint_bytes(engine)
    report = prune_checkpoints(engine, factory, older_than=timedelta(0), vacuum=True)
    db_after, cp_after = database_bytes(engine), checkpoint_bytes(engine)
    engine.dispose()
    print(
        f"\nstorm benchmark: {alerts} alerts ({DISTINCT} distinct + a storm of {STORM}), "
        f"{WORKERS} workers x 2 threads\n"
        f"  cases {len(cases)}, runs {runs} ({runs / alerts:.3f} per alert), model calls {calls} "
        f"({calls / alerts:.2f} per alert, {calls / runs:.1f} per run)\n"
        f"  ingest {ingest_s:.1f}s; every run at approval after {triage_s:.1f}s "
        f"({runs / triage_s:.1f} runs/s); {len(cases)} approvals in-process {approve_s:.1f}s\n"
        f"  database bytes per alert: {db_before / alerts:,.0f} before prune, {db_after / alerts:,.0f} after "
        f"(pg_database_size; plain VACUUM does not shrink files)\n"
        f"  checkpoint tables bytes per alert: {cp_before / alerts:,.0f} before, "
        f"{cp_after / alerts:,.0f} after; "
        f"checkpoint rows {report.rows_before} -> {report.rows_after}"
    )
