"""alert_triage end to end on real databases, with the scripted model (and real Windows events)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socflow.decisions import Decision, submit_decision
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.runner import RunStatus
from socflow.store import CaseStore
from socflow.tables import AuditEvent, CaseTechnique, Evidence, ModelCall, NoteRevision
from tests.workflows.triage_helpers import (
    SAMPLE_DIR,
    alert_from_event,
    ingest_one,
    make_runner,
    scripted,
    scripted_rules,
    settings_for,
)
from tools.siem.embedded import EmbeddedSiem

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_case(db_url: str, tmp_path: Path, shared_data: Path):  # type: ignore[no-untyped-def]
    """A case whose alert is built from a real Sysmon event loaded into the embedded SIEM."""
    settings = settings_for(db_url, tmp_path)
    siem = EmbeddedSiem(settings.siem.path)
    report = siem.load([shared_data / "logs" / SAMPLE_DIR])
    assert report.loaded >= 1
    event = next(siem.iter_all())
    siem.close()
    case_id = ingest_one(settings, alert_from_event(event))
    return settings, case_id, event


def test_pauses_with_a_cited_draft_then_a_new_process_resumes_with_an_edit(real_case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, event = real_case
    runner = make_runner(settings, scripted())
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    result = runner.advance(run_id)
    assert result.status is RunStatus.awaiting_input, runner.get(run_id).error
    with runner.factory() as session:
        store = CaseStore(session)
        case = store.get_case(case_id)
        assert (
            case.status == "awaiting_approval" and case.verdict == "true_positive" and case.confidence == 0.8
        )
        evidence = store.list_evidence(case_id)
        assert any(e.kind == "siem_event" and e.source_event_id == event.event_id for e in evidence)
        note = store.get_note(case_id)
        assert note is not None and note.status == "draft"
        draft = store.get_current_revision(note).body
        assert "[E1]" in draft and "FALLBACK" not in draft.upper()
        techniques = {t.technique_id for t in store.list_techniques(case_id)}
        assert "T1059.001" in techniques

    edited = tmp_path / "edited.md"
    edited.write_text(draft + "\nAnalyst: confirmed malicious, escalating to IR.\n")
    env = {
        **os.environ,
        "SOCFLOW_DATABASE__URL": settings.database.url,
        "SOCFLOW_SIEM__PATH": str(settings.siem.path),
        "SOCFLOW_MODEL__BACKEND": "scripted",
    }
    out = subprocess.run(
        [sys.executable, "-m", "socflow", "approve", str(case_id), "--edit", str(edited), "--user", "ana"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "completed" in out.stdout
    with runner.factory() as session:
        store = CaseStore(session)
        case = store.get_case(case_id)
        assert case.status == "escalated"  # true positive: approve/edit escalates
        revisions = store.list_revisions(store.get_note(case_id).id)  # type: ignore[union-attr]
        assert [r.author for r in revisions] == ["scripted", "ana"]
        assert "+Analyst: confirmed malicious" in (revisions[-1].diff or "")
        actions = [e.action for e in store.list_audit(case_id=case_id)]
    for expected in (
        "case.created",
        "alert.ingested",
        "run.queued",
        "evidence.added",
        "techniques.added",
        "case.assessed",
        "note.drafted",
        "run.awaiting_input",
        "run.decision",
        "note.decided",
        "run.finalize_case",
        "run.completed",
    ):
        assert expected in actions, expected
    assert actions.count("run.finalize_case") == 1
    # a second decision on the same interrupt is refused, not applied twice
    again = subprocess.run(
        [sys.executable, "-m", "socflow", "approve", str(case_id), "--approve", "--user", "bob"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert again.returncode == 1 and "no decision pending" in again.stderr


def test_draft_passes_the_citation_checker(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    model = scripted()
    runner = make_runner(settings, model)
    runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    drafts = [c for c in model.calls if c.node == "draft_note"]
    assert len(drafts) == 1  # valid on the first attempt: the checker found nothing to send back
    assert "previous draft was rejected" not in drafts[0].prompt


def test_reject_redrafts_once_with_the_reason_then_waits_for_a_manual_note(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    model = scripted()
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    runner.advance(run_id)
    r1 = submit_decision(
        runner, case_id, Decision(action="reject", user="ana", reason="mention the parent process")
    )
    assert r1.status is RunStatus.awaiting_input
    drafts = [c for c in model.calls if c.node == "draft_note"]
    assert len(drafts) == 2 and "mention the parent process" in drafts[1].prompt
    r2 = submit_decision(runner, case_id, Decision(action="reject", user="ana", reason="still wrong"))
    assert r2.status is RunStatus.awaiting_input
    assert r2.interrupt is not None and r2.interrupt["allowed_actions"] == ["edit", "escalate"]
    assert len([c for c in model.calls if c.node == "draft_note"]) == 2  # no third model draft
    from socflow.decisions import DecisionNotAllowed

    with pytest.raises(DecisionNotAllowed):
        submit_decision(runner, case_id, Decision(action="approve", user="ana"))
    done = submit_decision(runner, case_id, Decision(action="edit", user="ana", body="Manual note [E1]."))
    assert done.status is RunStatus.completed
    with runner.factory() as session:
        assert CaseStore(session).get_case(case_id).status == "escalated"


def test_escalate_sets_escalated(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    runner = make_runner(settings, scripted(verdict="false_positive", confidence=0.6))
    runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    submit_decision(runner, case_id, Decision(action="escalate", user="ana", reason="looks like IR work"))
    with runner.factory() as session:
        assert CaseStore(session).get_case(case_id).status == "escalated"


def test_approving_a_false_positive_closes_the_case(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    runner = make_runner(settings, scripted(verdict="false_positive", confidence=0.6))
    runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    submit_decision(runner, case_id, Decision(action="approve", user="ana"))
    with runner.factory() as session:
        case = CaseStore(session).get_case(case_id)
        assert case.status == "closed" and case.closed_at is not None


def test_invalid_model_output_twice_gives_needs_review(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    rules = [
        r for r in scripted_rules() if not (r.node == "assess_case" and r.method == "generate_structured")
    ]
    rules.insert(
        0,
        ScriptRule(
            '{"verdict": "totally_fine", "confidence": 1.0}', node="assess_case", method="generate_structured"
        ),
    )
    runner = make_runner(settings, ScriptedModel(rules))
    result = runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    assert result.status is RunStatus.awaiting_input
    with runner.factory() as session:
        case = CaseStore(session).get_case(case_id)
        assert case.verdict == "needs_review" and case.confidence is None
        calls = list(session.scalars(select(ModelCall).where(ModelCall.node == "assess_case")))
    # one audited call: the answer and its repair attempt both failed validation
    assert len(calls) == 1 and calls[0].error_kind == "structured_output_invalid"


def test_incompatible_workflow_version_is_refused(real_case) -> None:  # type: ignore[no-untyped-def]
    from socflow.runner import IncompatibleWorkflowVersion
    from socflow.tables import WorkflowRun

    settings, case_id, _ = real_case
    runner = make_runner(settings, scripted())
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    runner.advance(run_id)
    with runner.factory() as session, session.begin():
        session.get(WorkflowRun, run_id).workflow_version = "0.9.0"  # type: ignore[union-attr]
    with pytest.raises(IncompatibleWorkflowVersion):
        runner.resume(run_id, {"action": "approve", "user": "ana"}, user="ana")


def test_no_rows_are_duplicated_by_a_second_advance(real_case) -> None:  # type: ignore[no-untyped-def]
    settings, case_id, _ = real_case
    runner = make_runner(settings, scripted())
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    runner.advance(run_id)
    assert runner.advance(run_id).advanced is False  # awaiting a human: nothing to do
    with runner.factory() as session:
        counts = [session.scalar(select(func.count(t.id))) for t in (Evidence, CaseTechnique, NoteRevision)]
        assert (
            session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "note.drafted")) == 1
        )
    assert counts[2] == 1
