"""Runs advance on a real Celery worker; a late redelivery of a finished task is a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.tables import AuditEvent, ModelCall, WorkflowRun
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
from workers.routing import ADVANCE_TASK, WORKFLOWS

pytestmark = [
    pytest.mark.celery,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]


def test_runs_advance_on_a_worker_and_a_redelivered_task_is_a_noop(
    pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    settings = worker_settings(pg_url, redis_server.url, tmp_path)
    fleet.env = settings_env(settings)
    fleet.worker("w1", "--queues", WORKFLOWS, "--pool", "threads", "--concurrency", "2")
    dispatcher = CeleryDispatcher(settings)
    report = ingester(settings, dispatcher).ingest_text(
        "\n".join(json.dumps(alert(i)) for i in range(3)), actor="test"
    )
    assert len(report.runs_queued) == 3

    def done() -> bool:
        fleet.alive()
        return run_counts(settings).get("awaiting_input", 0) == 3

    wait_for(done, 120, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}")
    factory = session_factory(make_engine(pg_url))

    def snapshot() -> tuple[int, int, list[tuple[str, int, str]]]:
        with factory() as s:
            return (
                int(s.scalar(select(func.count(AuditEvent.id))) or 0),
                int(s.scalar(select(func.count(ModelCall.id))) or 0),
                sorted((r.id, r.attempts, r.status) for r in s.scalars(select(WorkflowRun))),
            )

    before = snapshot()
    run_id = report.runs_queued[0]
    task_id = "redelivered-" + run_id
    # the same task (same id), delivered again long after it finished
    for _ in range(2):
        dispatcher.app.send_task(ADVANCE_TASK, args=[run_id], queue=WORKFLOWS, task_id=task_id)
    wait_for(
        lambda: fleet.log("w1").count(f"Task {ADVANCE_TASK}[{task_id}] succeeded") == 2,
        60,
        lambda: fleet.logs(),
    )
    assert snapshot() == before
    dispatcher.shutdown()
