"""Routing, the dispatcher with a dead broker, the sweeper's choices, metrics and prune (no worker)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from socflow import wiring
from socflow.api import create_app
from socflow.db import make_engine, session_factory
from socflow.decisions import Decision, submit_decision
from socflow.metrics import SocflowCollector, render
from socflow.prune import checkpoint_rows, prune_checkpoints
from socflow.schemas import now_utc
from socflow.sdk import WorkflowSpec
from socflow.settings import Settings
from socflow.tables import WorkflowRun
from tests.workers.conftest import free_port
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted, settings_for
from workers.dispatch import CeleryDispatcher
from workers.routing import default_queues, queue_for
from workers.sweeper import Sweeper
from workflows.alert_triage import SPEC

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]


def _settings(**extra: Any) -> Settings:
    return Settings(_env_file=None, **extra)  # type: ignore[call-arg]


def test_model_runs_go_to_the_model_queue_only_when_the_model_is_in_process() -> None:
    custom = WorkflowSpec(name="x", version="1.0.0", description="", build=SPEC.build, queue="enrich")
    held = _settings(model={"backend": "transformers"}, worker={"model_queue": "gpu-a100"})
    assert queue_for(SPEC, held) == "gpu-a100"
    assert default_queues(held) == ["gpu-a100"]
    for backend in ("endpoint", "scripted"):
        light = _settings(model={"backend": backend})
        assert queue_for(SPEC, light) == "workflows"
        assert default_queues(light) == ["ingest", "workflows"]
    assert queue_for(custom, held) == "enrich"


def test_wiring_picks_celery_when_a_broker_is_configured(sqlite_url: str) -> None:
    settings = _settings(database={"url": sqlite_url}, broker={"url": f"redis://127.0.0.1:{free_port()}/0"})
    services = wiring.build_services(settings, siem=None)
    assert isinstance(services.dispatcher, CeleryDispatcher)
    assert isinstance(services.sweeper, Sweeper)  # the Celery sweeper: it sends through the broker
    services.close()


def test_a_dead_broker_never_fails_ingest_and_pauses_sends(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path, broker={"url": f"redis://127.0.0.1:{free_port()}/0"})
    case_id = ingest_one(settings, {"source": "t", "title": "x", "severity": "low"})
    runner = make_runner(settings, None)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    dispatcher = CeleryDispatcher(settings)
    calls: list[str] = []
    real_send = dispatcher.app.send_task

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real_send(*args, **kwargs)

    dispatcher.app.send_task = counting  # type: ignore[method-assign]
    assert dispatcher.queue_of(run_id) == "workflows"
    assert dispatcher.send(run_id) is False
    dispatcher.submit(run_id)  # skipped: the broker was just found down
    assert len(calls) == 1
    assert runner.get(run_id).status == "queued"  # the sweeper's job now
    dispatcher.shutdown()


def test_the_sweeper_sends_stale_queued_and_expired_runs_once_per_grace(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    runner = make_runner(settings, None)
    ids = [
        runner.start(
            "alert_triage",
            case_id=ingest_one(settings, {"source": "t", "title": f"a{i}", "severity": "low"}),
            actor="t",
        )
        for i in range(4)
    ]
    fresh, stale, expired, leased = ids
    now = now_utc()
    with runner.factory() as s, s.begin():
        s.execute(
            update(WorkflowRun).where(WorkflowRun.id == stale).values(updated_at=now - timedelta(seconds=120))
        )
        for run_id, until in ((expired, now - timedelta(seconds=1)), (leased, now + timedelta(seconds=300))):
            s.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id)
                .values(status="running", lease_until=until)
            )
    sent: list[str] = []
    sweeper = Sweeper(runner.factory, lambda r: sent.append(r) or True, grace_seconds=60)
    report = sweeper.sweep_once()
    assert sorted(sent) == sorted([stale, expired]) and fresh not in sent and leased not in sent
    assert (report.queued, report.expired, report.sent) == (1, 1, 2)
    assert sweeper.sweep_once().sent == 0  # sent moments ago: not again within the grace period
    down = Sweeper(runner.factory, lambda r: False, grace_seconds=60)
    assert down.sweep_once().failed == 1  # the broker is down: stop this pass, try the next


def test_the_sweeper_leaves_a_long_backlog_alone(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    runner = make_runner(settings, None)
    ids = [
        runner.start(
            "alert_triage",
            case_id=ingest_one(settings, {"source": "t", "title": f"b{i}", "severity": "low"}),
            actor="t",
        )
        for i in range(3)
    ]
    with runner.factory() as s, s.begin():
        s.execute(update(WorkflowRun).values(updated_at=now_utc() - timedelta(seconds=120)))
    depth = {"workflows": 3}
    sent: list[str] = []

    def sweeper() -> Sweeper:
        return Sweeper(
            runner.factory,
            lambda r: sent.append(r) or True,
            grace_seconds=60,
            queue_of_workflow=lambda w: "workflows",
            depths=lambda queues: {q: depth.get(q, 0) for q in queues},
        )

    report = sweeper().sweep_once()
    assert sent == [] and report.backlogged == 3  # three messages for three queued runs: nothing lost
    depth["workflows"] = 1  # two messages lost (or one, and one extra copy): send every stale run
    assert sweeper().sweep_once().sent == 3 and sorted(sent) == sorted(ids)


def _approved_and_waiting(settings: Settings) -> tuple[str, str, Any]:
    runner = make_runner(settings, scripted())
    runs = []
    for i in range(2):
        case_id = ingest_one(
            settings,
            {
                "source": "t",
                "source_ref": f"p{i}",
                "title": "Encoded PowerShell",
                "severity": "high",
                "rule": {"id": "r", "tags": ["attack.t1059.001"]},
                "entities": {"hosts": [f"H{i}"]},
            },
        )
        runs.append(
            (case_id, runner.advance(runner.start("alert_triage", case_id=case_id, actor="t")).run_id)
        )
    done = submit_decision(runner, runs[0][0], Decision(action="approve", user="ana"))
    assert done.status.value == "completed"
    return runs[0][1], runs[1][1], runner


def test_prune_keeps_the_final_checkpoint_of_finished_runs_only(db_url: str, tmp_path: Path) -> None:
    settings = settings_for(db_url, tmp_path)
    finished, waiting, runner = _approved_and_waiting(settings)
    engine = make_engine(db_url)
    table = "writes" if db_url.startswith("sqlite") else "checkpoint_writes"

    def per_thread(run_id: str) -> int:
        with engine.connect() as conn:
            return int(
                conn.scalar(text("SELECT count(*) FROM checkpoints WHERE thread_id = :t"), {"t": run_id})
            )

    assert per_thread(finished) == 1  # compacted by the runner as it completed
    # a run with a checkpoint history (drafted, rejected, redrafted) that then failed: prune trims it
    case_id = ingest_one(
        settings,
        {
            "source": "t",
            "source_ref": "p-failed",
            "title": "Encoded PowerShell",
            "severity": "high",
            "rule": {"id": "r", "tags": ["attack.t1059.001"]},
            "entities": {"hosts": ["H9"]},
        },
    )
    failed = runner.advance(runner.start("alert_triage", case_id=case_id, actor="t")).run_id
    redraft = submit_decision(runner, case_id, Decision(action="reject", user="ana", reason="more detail"))
    assert redraft.status.value == "awaiting_input"
    with runner.factory() as s, s.begin():
        s.execute(
            update(WorkflowRun).where(WorkflowRun.id == failed).values(status="failed", finished_at=now_utc())
        )
    final_state = SPEC.read_state(db_url, failed)
    waiting_state = SPEC.read_state(db_url, waiting)
    before = {r: per_thread(r) for r in (failed, waiting)}
    assert before[failed] > 1
    kept = prune_checkpoints(engine, session_factory(engine), older_than=timedelta(days=1))
    assert kept.runs == 0 and per_thread(failed) == before[failed]  # finished too recently
    report = prune_checkpoints(engine, session_factory(engine), older_than=timedelta(0), vacuum=True)
    assert report.runs == 2 and report.rows_after == checkpoint_rows(engine) < report.rows_before
    assert per_thread(failed) == 1 and per_thread(finished) == 1 and per_thread(waiting) == before[waiting]
    assert SPEC.read_state(db_url, failed) == final_state
    assert SPEC.read_state(db_url, waiting) == waiting_state
    orphans = (
        f"SELECT count(*) FROM {table} WHERE thread_id = :t "
        "AND checkpoint_id NOT IN (SELECT checkpoint_id FROM checkpoints WHERE thread_id = :t)"
    )
    with engine.connect() as conn:
        assert conn.scalar(text(orphans), {"t": failed}) == 0  # no writes of deleted checkpoints
    engine.dispose()


def test_metrics_count_runs_cases_and_model_calls(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path, broker={"url": f"redis://127.0.0.1:{free_port()}/0"})
    _approved_and_waiting(settings)
    factory = session_factory(make_engine(sqlite_url))
    body = render(SocflowCollector(factory, broker_url=settings.broker.url, queues=["workflows"])).decode()
    assert 'socflow_runs{status="completed"} 1.0' in body
    assert 'socflow_runs{status="awaiting_input"} 1.0' in body
    assert 'socflow_cases{status="awaiting_approval"} 1.0' in body
    assert 'socflow_model_calls_total{backend="scripted",method="choose",outcome="ok"}' in body
    assert "socflow_model_call_latency_seconds_count" in body
    assert "socflow_broker_up 0.0" in body  # nothing listens on that port
    with factory() as s:
        assert s.scalar(select(func.count(WorkflowRun.id))) == 2
    app = create_app(settings.model_copy(update={"broker": settings.broker.model_copy(update={"url": ""})}))
    with TestClient(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert (
        'socflow_runs{status="completed"} 1.0' in response.text and "socflow_broker_up" not in response.text
    )
