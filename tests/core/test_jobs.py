"""Periodic jobs, the in-process sweeper, the thread dispatcher and the evidence seam (no server)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socflow.cli import app
from socflow.dispatch import ThreadDispatcher
from socflow.errors import NotFoundError, SiemError
from socflow.evidence import CaseContext, collect_evidence
from socflow.jobs import Job, JobRegistry, Scheduler
from socflow.runner import AdvanceResult, RunStatus
from socflow.schemas import EvidenceRecord, now_utc
from socflow.settings import Settings
from socflow.sweep import LocalSweeper
from socflow.wiring import build_jobs, build_services
from tests.workflows.triage_helpers import scripted, settings_for


def test_the_scheduler_runs_every_job_at_start_then_on_its_interval() -> None:
    now = [0.0]
    ran: list[str] = []

    def boom(_: Any) -> None:
        ran.append("boom")
        raise RuntimeError("a failing job is logged, never fatal")

    jobs = JobRegistry([Job("a", 10, lambda _: ran.append("a")), Job("b", 3, boom)])
    scheduler = Scheduler(jobs, services=None, clock=lambda: now[0])  # type: ignore[arg-type]
    assert scheduler.run_pending() == ["a", "b"]
    now[0] = 2.9
    assert scheduler.run_pending() == []
    now[0] = 3.0
    assert scheduler.run_pending() == ["b"]
    now[0] = 10.0
    assert scheduler.run_pending() == ["a", "b"]
    assert ran == ["a", "boom", "boom", "a", "boom"]
    with pytest.raises(ValueError):
        jobs.add(Job("a", 1, lambda _: None))
    with pytest.raises(NotFoundError):
        jobs.get("nope")


def test_the_job_registry_names_the_sweeper_with_its_interval() -> None:
    jobs = build_jobs(Settings(_env_file=None, worker={"sweep_interval_seconds": 7}))  # type: ignore[call-arg]
    assert jobs.names() == ["sweep", "deliver_outbox"] and jobs.get("sweep").every == 7
    detecting = build_jobs(Settings(_env_file=None, detection={"schedule": True}))  # type: ignore[call-arg]
    assert "detect" in detecting.names()


def _queued(settings: Settings, n: int) -> list[str]:
    services = build_services(settings, model=None, dispatcher="null")
    alerts = [
        {"source": "t", "source_ref": f"j{i}", "title": f"x{i}", "severity": "low", "rule": {"id": f"r{i}"}}
        for i in range(n)
    ]
    report = services.ingest.ingest_text("\n".join(json.dumps(a) for a in alerts), actor="test")
    services.close()
    return list(report.runs_queued)


def test_the_local_sweeper_takes_everything_at_start_then_only_what_is_left_behind(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    first, second = _queued(settings, 2)
    services = build_services(settings, model=None, dispatcher="null")
    submitted: list[str] = []
    clock = [now_utc()]
    sweeper = LocalSweeper(services.factory, submitted.append, grace_seconds=60, clock=lambda: clock[0])
    assert sweeper.sweep_once().submitted == 2 and sorted(submitted) == sorted([first, second])
    submitted.clear()
    assert sweeper.sweep_once().submitted == 0  # queued moments ago: the request hands them on itself
    clock[0] += timedelta(seconds=61)
    assert sweeper.sweep_once().submitted == 2
    assert sorted(submitted) == sorted([first, second])  # left queued past the grace period
    services.close()


def test_the_thread_dispatcher_never_queues_a_run_twice() -> None:
    release = threading.Event()
    calls: list[str] = []

    class SlowRunner:
        def advance(self, run_id: str) -> AdvanceResult:
            calls.append(run_id)
            release.wait(10)
            return AdvanceResult(run_id, RunStatus.completed, True)

    dispatcher = ThreadDispatcher(SlowRunner())  # type: ignore[arg-type]
    for run_id in ("a", "b", "b", "a", "b"):
        dispatcher.submit(run_id)
    assert dispatcher.pending() == 2
    release.set()
    dispatcher._pool.shutdown(wait=True)
    assert calls == ["a", "b"] and dispatcher.pending() == 0


class _Provider:
    def __init__(self, name: str, ids: list[str], fail: Exception | None = None) -> None:
        self.name, self.ids, self.fail = name, ids, fail
        self.asked: list[CaseContext] = []

    def evidence(self, context: CaseContext, *, limit: int) -> list[EvidenceRecord]:
        self.asked.append(context)
        if self.fail is not None:
            raise self.fail
        return [EvidenceRecord(evidence_id=i, kind="test", summary=f"{self.name} {i}") for i in self.ids]


def test_evidence_comes_from_every_provider_once_per_id_within_the_limit() -> None:
    context = CaseContext(case_id=1, hosts=("WS1",))
    down = _Provider("down", [], fail=SiemError("the SIEM is down"))
    first, second = _Provider("a", ["e1", "e2"]), _Provider("b", ["e2", "e3", "e4"])
    found = collect_evidence([down, first, second], context, limit=3)
    assert [e.evidence_id for e in found] == ["e1", "e2", "e3"]  # a failing provider costs its evidence only
    assert down.asked == first.asked == second.asked == [context]
    with pytest.raises(ZeroDivisionError):  # a bug is not swallowed
        collect_evidence([_Provider("bug", [], fail=ZeroDivisionError())], context)


def test_socflow_sweep_without_a_broker_advances_runs_in_process(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    run_ids = _queued(settings, 2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_BROKER__URL", "")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "siem.db"))

    def with_scripted_model(s: Settings, **options: Any) -> Any:
        return build_services(s, model=scripted().with_recorder, **options)

    result = CliRunner().invoke(app, ["sweep", "--once"], obj=with_scripted_model)
    assert result.exit_code == 0, result.output
    assert "2 queued" in result.output
    services = build_services(settings, model=None, dispatcher="null")
    assert [services.runner.get(r).status for r in run_ids] == ["awaiting_input"] * 2
    services.close()
