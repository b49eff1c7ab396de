"""A run that keeps killing its worker is failed after ``max_attempts`` claims, not retried forever."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from socflow.runner import RunStatus
from socflow.schemas import now_utc
from socflow.tables import WorkflowRun
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted, settings_for


def test_a_run_out_of_attempts_fails_clearly(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path, worker={"max_attempts": 3})
    case_id = ingest_one(settings, {"source": "t", "source_ref": "poison", "title": "x", "severity": "low"})
    runner = make_runner(settings, scripted())
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    with runner.factory() as s, s.begin():
        run = s.get(WorkflowRun, run_id)
        assert run is not None
        run.status, run.attempts, run.lease_until = "running", 3, now_utc() - timedelta(seconds=1)
    result = runner.advance(run_id)
    assert result.status is RunStatus.failed
    failed = runner.get(run_id)
    assert failed.error_kind == "attempts_exhausted" and "3 times" in (failed.error or "")
    assert runner.advance(run_id).advanced is False  # final: nothing more happens
