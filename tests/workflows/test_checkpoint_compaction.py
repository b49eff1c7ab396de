"""Compact storage without `db prune`: a completed run keeps only its latest checkpoint (the final state
the UI reads); a failed run keeps the checkpoint `runs retry` resumes from, and the retried run does not
redo the nodes that had finished."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from socflow.decisions import submit_decision
from socflow.enums import RunStatus
from socflow.hitl import Action, Decision
from socflow.runner import Runner
from socflow.testing import ScriptedModel, WorkflowHarness, alert
from tests.workflows.test_run_retry import ALERT, DownModel, retry_settings
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted_rules


def checkpoints(runner: Runner, run_id: str) -> int:
    with runner.factory() as s:
        return int(
            s.scalar(text("SELECT count(*) FROM checkpoints WHERE thread_id = :t"), {"t": run_id}) or 0
        )


def test_a_completed_run_keeps_only_its_latest_checkpoint(db_url: str, tmp_path: Path) -> None:
    h = WorkflowHarness.create(tmp_path, model=ScriptedModel(scripted_rules()), db_url=db_url)
    case_id = h.cases.case(alert("Encoded PowerShell", source_ref="compact-1", hosts=["WS1"], users=["bob"]))
    other_case = h.cases.case(
        alert("Encoded PowerShell", source_ref="compact-2", hosts=["WS2"], users=["eve"])
    )
    run_id = h.runner.start("alert_triage", case_id=case_id, actor="test")
    other = h.runner.start("alert_triage", case_id=other_case, actor="test")
    for run in (run_id, other):
        assert h.runner.advance(run).status is RunStatus.awaiting_input
        assert checkpoints(h.runner, run) >= 1  # a run waiting for its analyst resumes from it
    rejected = h.resume(run_id, "reject", reason="name the source host")
    assert rejected.status is RunStatus.awaiting_input
    assert h.resume(run_id, "approve").status is RunStatus.completed

    assert checkpoints(h.runner, run_id) == 1
    final = h.state(run_id)  # the final state is still readable (case page, `runs show`)
    assert final["outcome"] == "escalated" and final["drafts_made"] == 2
    # another run, still waiting, is untouched by the first one's compaction and still resumes
    assert checkpoints(h.runner, other) >= 1
    assert h.resume(other, "approve").status is RunStatus.completed
    assert checkpoints(h.runner, other) == 1


def test_a_failed_run_keeps_its_checkpoint_and_retry_resumes_from_it(sqlite_url: str, tmp_path: Path) -> None:
    settings = retry_settings(sqlite_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel()
    model.node, model.failures = "assess_case", 99  # the endpoint drops every assess_case call
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.failed
    assert checkpoints(runner, run_id) >= 1
    assert model.answered.count("map_attack") == 1

    model.failures = 0  # the endpoint is back
    runner.retry(run_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.awaiting_input, runner.get(run_id).error
    assert model.answered.count("map_attack") == 1  # resumed from the checkpoint: not mapped again
    assert model.answered.count("assess_case") == 2 and "draft_note" in model.answered
    approve = Decision(action=Action.approve, user="ana")
    assert submit_decision(runner, case_id, approve, run_id=run_id).status is RunStatus.completed
    assert checkpoints(runner, run_id) == 1
