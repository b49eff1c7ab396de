"""Run steps: a process that dies inside any node, after the node's database writes and before its
checkpoint, leaves a run that a re-run finishes with no duplicated rows and the same outcome as a run that
never died, through reject -> redraft -> approve.

The crash is a ``BaseException`` raised right after the node returned (its one write transaction, with
its ``run_steps`` row, has committed; LangGraph has not written the node's checkpoint). The runner does not
catch it: the run stays ``running`` with a lease, as a killed worker leaves it; the lease is then expired
and the run advanced again from its last checkpoint, on the real checkpointer and database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select, update

from socflow.enums import RunStatus
from socflow.runner import AdvanceResult
from socflow.schemas import now_utc
from socflow.tables import (
    AuditEvent,
    CaseTechnique,
    Evidence,
    ModelCall,
    Note,
    NoteRevision,
    RunStep,
    WorkflowRun,
)
from socflow.testing import ScriptedModel, WorkflowHarness, alert
from tests.workflows import test_incident_report as incident
from tests.workflows.triage_helpers import scripted_rules
from workflows.alert_triage import nodes as triage_nodes
from workflows.incident_report import nodes as report_nodes


class Crash(BaseException):
    """The worker process dies here (nothing in socflow catches a BaseException)."""


TRIAGE_ALERT = alert(
    "Encoded PowerShell",
    source_ref="steps-1",
    rule_id="r-ps",
    tags=["attack.t1059.001", "attack.t1027"],
    hosts=["WS1"],
    users=["alice"],
)

# (workflow, nodes module, node, visit): every node that writes, on each of its visits in the scenario
TRIAGE_POINTS = [
    ("alert_triage", triage_nodes, node, 1)
    for node in (
        "gather_evidence",
        "map_attack",
        "assess_case",
        "apply_policy",
        "draft_note",
        "finalize_case",
    )
] + [("alert_triage", triage_nodes, node, 2) for node in ("draft_note", "finalize_case")]
REPORT_POINTS = [
    ("incident_report", report_nodes, node, visit)
    for node in (
        "summarize_case",
        "identify_impacted",
        "map_attack",
        "plan_response",
        "draft_report",
        "finalize_report",
    )
    for visit in (1, 2)
]


def _harness(tmp_path: Path, db_url: str, workflow: str) -> WorkflowHarness:
    rules = scripted_rules() if workflow == "alert_triage" else incident.rules()
    return WorkflowHarness.create(tmp_path, model=ScriptedModel(rules), db_url=db_url)


def _case(h: WorkflowHarness, workflow: str) -> int:
    if workflow == "alert_triage":
        return h.cases.case(TRIAGE_ALERT)
    return h.cases.case(*incident.INCIDENT)


def _crash_on(monkeypatch: pytest.MonkeyPatch, module: ModuleType, node: str, visit: int) -> list[int]:
    """Make ``node`` die once, after its ``visit``-th call returned; the list counts its calls."""
    original = getattr(module, node)
    calls: list[int] = []

    def dying(state: Any, runtime: Any) -> Any:
        result = original(state, runtime)
        calls.append(1)
        if len(calls) == visit:
            raise Crash(f"{node} visit {visit}")
        return result

    monkeypatch.setattr(module, node, dying)
    return calls


def _step(
    h: WorkflowHarness, run_id: str, act: Callable[[], AdvanceResult], crashes: list[str]
) -> AdvanceResult:
    try:
        return act()
    except Crash as crash:
        crashes.append(str(crash))
    assert h.runner.get(run_id).status == RunStatus.running  # left behind by the dead process
    with h.factory() as s, s.begin():  # its lease runs out
        s.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id)
            .values(lease_until=now_utc() - timedelta(seconds=1))
        )
    return h.runner.advance(run_id)


def _scenario(h: WorkflowHarness, workflow: str, case_id: int) -> tuple[str, list[str]]:
    """start -> draft -> reject -> redraft -> approve, recovering from a crash at any point."""
    crashes: list[str] = []
    run_id = h.runner.start(workflow, case_id=case_id, actor="test")
    first = _step(h, run_id, lambda: h.runner.advance(run_id), crashes)
    assert first.status is RunStatus.awaiting_input, h.runner.get(run_id).error
    again = _step(h, run_id, lambda: h.resume(run_id, "reject", reason="name the source host"), crashes)
    assert again.status is RunStatus.awaiting_input, h.runner.get(run_id).error
    assert again.interrupt is not None and "approve" in again.interrupt["allowed_actions"]  # the redraft
    done = _step(h, run_id, lambda: h.resume(run_id, "approve"), crashes)
    assert done.status is RunStatus.completed, h.runner.get(run_id).error
    return run_id, crashes


def _picture(h: WorkflowHarness, case_id: int, run_id: str) -> dict[str, Any]:
    """Everything the scenario wrote, without ids and times, to compare two runs."""
    state = h.state(run_id)
    with h.factory() as s:
        notes = list(s.scalars(select(Note).where(Note.case_id == case_id)))
        return {
            "outcome": state["outcome"],
            "drafts_made": state["drafts_made"],
            "case_status": _case_status(h, case_id),
            "evidence": sorted(s.scalars(select(Evidence.evidence_id).where(Evidence.case_id == case_id))),
            "techniques": sorted(
                (t.technique_id, t.source)
                for t in s.scalars(select(CaseTechnique).where(CaseTechnique.case_id == case_id))
            ),
            "notes": sorted((n.kind, n.status, n.current_revision) for n in notes),
            "revisions": sorted(
                (r.revision, r.author_kind)
                for r in s.scalars(
                    select(NoteRevision).where(NoteRevision.note_id.in_([n.id for n in notes]))
                )
            ),
            "audit": Counter(
                a
                for a in s.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case_id))
                if not a.startswith("run.") or a.startswith("run.finalize")
            ),
            "model_calls": Counter(s.scalars(select(ModelCall.node).where(ModelCall.run_id == run_id))),
            "steps": Counter(s.scalars(select(RunStep.node).where(RunStep.run_id == run_id))),
        }


def _case_status(h: WorkflowHarness, case_id: int) -> str:
    with h.store() as store:
        return store.get_case(case_id).status


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> dict[str, dict[str, Any]]:
    """The scenario without a crash, once per workflow."""
    import shutil

    out = {}
    for workflow in ("alert_triage", "incident_report"):
        folder = tmp_path_factory.mktemp(f"baseline-{workflow}")
        shutil.copyfile(_sqlite_template, folder / "socflow.db")
        h = _harness(folder, f"sqlite:///{folder / 'socflow.db'}", workflow)
        case_id = _case(h, workflow)
        run_id, crashes = _scenario(h, workflow, case_id)
        assert crashes == []
        out[workflow] = _picture(h, case_id, run_id)
    return out


@pytest.mark.parametrize(
    ("workflow", "module", "node", "visit"),
    TRIAGE_POINTS + REPORT_POINTS,
    ids=[f"{w}-{n}-{v}" for w, _, n, v in TRIAGE_POINTS + REPORT_POINTS],
)
def test_crash_after_a_nodes_writes_resumes_without_duplicates(
    workflow: str,
    module: ModuleType,
    node: str,
    visit: int,
    baselines: dict[str, dict[str, Any]],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _harness(tmp_path, sqlite_url, workflow)
    case_id = _case(h, workflow)
    calls = _crash_on(monkeypatch, module, node, visit)
    run_id, crashes = _scenario(h, workflow, case_id)
    assert crashes == [f"{node} visit {visit}"]
    visits = 2 if workflow == "incident_report" or node in ("draft_note", "finalize_case") else 1
    assert len(calls) == visits + 1  # the node ran again after the crash, and returned its recorded update
    picture = _picture(h, case_id, run_id)
    assert picture == baselines[workflow]
    assert h.runner.get(run_id).attempts >= 4  # start, reject, approve, and the recovery


def test_dying_in_finalize_after_a_reject_still_redrafts(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug of issue 15: the re-run of ``finalize_case`` after a reject returned ``{}`` and the run
    ended instead of redrafting. On SQLite and PostgreSQL."""
    h = _harness(tmp_path, db_url, "alert_triage")
    case_id = _case(h, "alert_triage")
    _crash_on(monkeypatch, triage_nodes, "finalize_case", 1)
    crashes: list[str] = []
    run_id = h.runner.start("alert_triage", case_id=case_id, actor="test")
    assert h.runner.advance(run_id).status is RunStatus.awaiting_input
    again = _step(h, run_id, lambda: h.resume(run_id, "reject", reason="check the parent process"), crashes)
    assert crashes == ["finalize_case visit 1"]
    assert again.status is RunStatus.awaiting_input, h.runner.get(run_id).error
    state = h.state(run_id)
    assert state["outcome"] == "rejected" and state["drafts_made"] == 2
    assert state["reject_reason"] == "check the parent process"
    with h.store() as store:
        note = store.get_note(case_id)
        assert note is not None and note.status == "draft" and note.current_revision == 2
        assert store.get_case(case_id).status == "awaiting_approval"
