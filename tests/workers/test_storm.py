"""150 distinct alerts plus a 50-alert storm, on PostgreSQL, Redis and two real worker processes: 151
cases, exactly 151 runs, every run at the analyst's approval (or closed by policy) within five minutes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.tables import Case, NoteRevision, WorkflowRun
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
from workers.dispatch import CeleryDispatcher
from workers.routing import INGEST, WORKFLOWS

pytestmark = [
    pytest.mark.celery,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]

DISTINCT = 150
STORM = 50
DONE = ("awaiting_input", "completed")


@pytest.mark.timeout(420)
def test_storm_on_two_workers_makes_151_cases_and_151_runs(
    pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    settings = worker_settings(pg_url, redis_server.url, tmp_path)
    fleet.env = settings_env(settings)
    for name in ("w1", "w2"):
        fleet.worker(name, "--queues", f"{INGEST},{WORKFLOWS}", "--pool", "threads", "--concurrency", "2")
    dispatcher = CeleryDispatcher(settings)
    service = ingester(settings, dispatcher)
    started = time.monotonic()
    storm = [alert(1000 + i, host="WS-STORM", ref=f"storm-{i}") for i in range(STORM)]
    distinct = [alert(i) for i in range(DISTINCT)]
    queued: list[str] = []
    for batch in (storm, distinct[:50], distinct[50:100], distinct[100:]):  # the storm arrives in one burst
        report = service.ingest_text("\n".join(json.dumps(a) for a in batch), actor="test")
        assert report.accepted == len(batch), report
        queued += report.runs_queued
    assert len(queued) == DISTINCT + 1

    def finished() -> bool:
        fleet.alive()
        counts = run_counts(settings)
        return sum(counts.get(s, 0) for s in DONE) == DISTINCT + 1 or counts.get("failed", 0) > 0

    wait_for(finished, 300, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=1.0)
    elapsed = time.monotonic() - started
    counts = run_counts(settings)
    assert counts.get("failed", 0) == 0, f"{counts}\n{fleet.logs()}"
    factory = session_factory(make_engine(pg_url))
    with factory() as s:
        assert s.scalar(select(func.count(Case.id))) == DISTINCT + 1
        assert s.scalar(select(func.count(WorkflowRun.id))) == DISTINCT + 1
        per_case = s.execute(select(WorkflowRun.case_id, func.count()).group_by(WorkflowRun.case_id)).all()
        assert all(n == 1 for _, n in per_case)
        statuses = dict(s.execute(select(Case.status, func.count()).group_by(Case.status)).all())
        assert set(statuses) <= {"awaiting_approval", "closed"}, statuses
        assert s.scalar(select(func.count(NoteRevision.id))) == DISTINCT + 1
    print(f"\n{DISTINCT + 1} runs finished in {elapsed:.1f}s on 2 workers: {counts}")
    dispatcher.shutdown()
