"""Losing a worker or Redis loses nothing: a SIGKILLed worker's runs finish on another worker after their
lease, sent again by the sweeper (not by Redis's one-hour visibility timeout), with no duplicated notes,
evidence or audit events; a Redis restart that drops every queued message loses no alert and no run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.tables import AuditEvent, Case, CaseTechnique, Evidence, NoteRevision, RunStep, WorkflowRun
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

LEASE = 3


def _finished_nodes(factory: sessionmaker[Session], run_id: str) -> set[str]:
    """The nodes the run finished (its ``run_steps``: the runner checkpoints only when the graph exits)."""
    with factory() as s:
        return set(s.scalars(select(RunStep.node).where(RunStep.run_id == run_id)))


@pytest.mark.timeout(300)
def test_sigkilled_worker_runs_finish_elsewhere_without_duplicates(
    pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    settings = worker_settings(pg_url, redis_server.url, tmp_path, worker={"run_lease_seconds": LEASE})
    fleet.env = settings_env(settings)
    block = tmp_path / "block-assess"
    block.write_text("hold")
    fleet.worker(
        "doomed",
        "--queues",
        WORKFLOWS,
        "--pool",
        "threads",
        "--concurrency",
        "2",
        extra_env={"SOCFLOW_TEST_BLOCK_FILE": str(block)},
    )
    dispatcher = CeleryDispatcher(settings)
    report = ingester(settings, dispatcher).ingest_text(
        "\n".join(json.dumps(alert(i)) for i in range(6)), actor="test"
    )
    runs = report.runs_queued
    assert len(runs) == 6
    factory = session_factory(make_engine(pg_url))

    def mid_graph() -> list[str]:
        with factory() as s:
            running = list(s.scalars(select(WorkflowRun.id).where(WorkflowRun.status == "running")))
        return [r for r in running if _finished_nodes(factory, r) == {"gather_evidence", "map_attack"}]

    def two_blocked() -> bool:
        fleet.alive()
        return len(mid_graph()) == 2

    wait_for(two_blocked, 120, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=0.5)
    killed = mid_graph()
    time.sleep(0.5)  # inside assess_case, blocked on the file
    fleet.kill("doomed")
    assert run_counts(settings) == {"running": 2, "queued": 4}
    # A new worker (the killed one's two messages stay unacknowledged in Redis for an hour) and the
    # sweeper, scheduled by its beat: the four queued runs come from the queue, the two killed ones from
    # the sweeper once their lease expires.
    fleet.worker(
        "rescuer",
        "--queues",
        f"{INGEST},{WORKFLOWS}",
        "--pool",
        "threads",
        "--concurrency",
        "2",
        "--beat",
        "--sweep-interval",
        "1",
        "--sweep-grace",
        "30",
        "--schedule",
        str(tmp_path / "beat-schedule"),
    )

    def all_waiting() -> bool:
        fleet.alive()
        return run_counts(settings) == {"awaiting_input": 6}

    wait_for(all_waiting, 150, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=0.5)
    with factory() as s:
        attempts = dict(s.execute(select(WorkflowRun.id, WorkflowRun.attempts)).all())
        assert {r: attempts[r] for r in killed} == dict.fromkeys(killed, 2)
        for case_id in s.scalars(select(Case.id)):

            def events(action: str, case_id: int = case_id) -> int:
                return int(
                    s.scalar(
                        select(func.count(AuditEvent.id)).where(
                            AuditEvent.case_id == case_id, AuditEvent.action == action
                        )
                    )
                    or 0
                )

            assert events("evidence.added") <= 1, case_id
            assert events("techniques.added") == 1, case_id
            assert events("note.drafted") == 1, case_id
            assert events("run.awaiting_input") == 1, case_id
            evidence = list(s.scalars(select(Evidence.evidence_id).where(Evidence.case_id == case_id)))
            assert len(evidence) == len(set(evidence))
            techniques = list(
                s.scalars(select(CaseTechnique.technique_id).where(CaseTechnique.case_id == case_id))
            )
            assert len(techniques) == len(set(techniques)) >= 1
        assert s.scalar(select(func.count(NoteRevision.id))) == 6
    dispatcher.shutdown()


@pytest.mark.timeout(300)
def test_redis_restart_mid_load_loses_no_alert_and_no_run(
    pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    settings = worker_settings(pg_url, redis_server.url, tmp_path)
    fleet.env = settings_env(settings)
    fleet.worker("w1", "--queues", f"{INGEST},{WORKFLOWS}", "--pool", "threads", "--concurrency", "1")
    fleet.start("sweeper", "sweep", "--interval", "1", "--grace", "4")
    dispatcher = CeleryDispatcher(settings)
    service = ingester(settings, dispatcher)
    first = [alert(i) for i in range(40)]
    report = service.ingest_text("\n".join(json.dumps(a) for a in first), actor="test")
    assert len(report.runs_queued) == 40

    def some_done() -> bool:
        fleet.alive()
        return run_counts(settings).get("awaiting_input", 0) >= 3

    wait_for(some_done, 120, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}")
    backlog = redis_server.llen(WORKFLOWS)
    assert backlog > 10, f"the load ended too soon to test anything: {backlog} messages left"
    fleet.kill("sweeper")  # off while we check that the restart really emptied the queue
    redis_server.stop()  # every queued message is lost
    # alerts keep arriving while the broker is down: committed, their runs queued in the database
    down = [alert(100 + i) for i in range(10)]
    report = service.ingest_text("\n".join(json.dumps(a) for a in down), actor="test")
    assert report.accepted == 10 and len(report.runs_queued) == 10
    time.sleep(2)
    redis_server.start()
    assert redis_server.llen(WORKFLOWS) == 0  # nothing survived
    fleet.start("sweeper", "sweep", "--interval", "1", "--grace", "4")  # recovery is the sweeper's job

    def all_done() -> bool:
        fleet.alive()
        return run_counts(settings) == {"awaiting_input": 50}

    wait_for(all_done, 200, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=1.0)
    factory = session_factory(make_engine(pg_url))
    with factory() as s:
        assert s.scalar(select(func.count(Case.id))) == 50
        assert s.scalar(select(func.count(NoteRevision.id))) == 50
    dispatcher.shutdown()
