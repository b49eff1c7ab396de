"""A case with a stale draft always has a queued re-assessment (issue 17, defect 6): three alerts with the
same rule id and host, each naming a technique the assessment did not see (so each makes the draft stale,
issue 18's storm economy), runs processed after each, then approve."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from socflow import wiring
from socflow.db import make_engine, session_factory
from socflow.decisions import Decision, submit_decision
from socflow.ingest import IngestService
from socflow.runner import RunStatus
from socflow.store import CaseStore
from socflow.tables import WorkflowRun
from tests.workflows.triage_helpers import make_runner, scripted, settings_for


def _alert(n: int) -> str:
    return json.dumps(
        {
            "source": "edr",
            "source_ref": f"frozen-{n}",
            "title": "Encoded PowerShell",
            "severity": "high",
            "rule": {"id": "ps-encoded", "name": "Encoded PowerShell", "tags": [f"attack.t1059.00{n + 1}"]},
            "entities": {"hosts": ["WS01"], "users": ["alice"]},
        }
    )


def test_a_third_alert_still_queues_a_reassessment_and_approve_works(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    factory = session_factory(make_engine(sqlite_url))
    service = IngestService(factory, **wiring.ingest_options(settings))
    runner = make_runner(settings, scripted(verdict="true_positive", confidence=0.9))

    def process() -> None:
        for run_id in runner.runnable():
            runner.advance(run_id)

    case_ids = set()
    for n in range(3):
        report = service.ingest_text(_alert(n), actor="cli")
        assert report.accepted == 1
        case_ids.add(report.items[0].case_id)
        process()
    (case_id,) = case_ids
    with factory() as session:
        runs = list(session.scalars(select(WorkflowRun).where(WorkflowRun.case_id == case_id)))
        note = CaseStore(session).get_note(case_id)
    statuses = sorted(r.status for r in runs)
    assert statuses.count(RunStatus.awaiting_input.value) == 1, statuses  # the third draft waits
    assert statuses.count(RunStatus.superseded.value) == 2, statuses  # each new technique re-assessed
    assert note is not None and note.stale_at is None  # the waiting draft is the fresh one
    result = submit_decision(runner, case_id, Decision(action="approve", user="ana"))
    assert result.advanced
    with factory() as session:
        assert CaseStore(session).get_case(case_id).status == "escalated"
