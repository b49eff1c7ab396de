"""Read-only queries behind the pages: the queue, a case's page, its history, the workflows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socflow.api.models import AuditOut, CaseDetail, EvidenceOut, NoteOut, RevisionOut, RunOut
from socflow.api.routes_cases import case_detail
from socflow.enums import (
    ACTIVE_RUN_STATUSES,
    DEFAULT_NOTE_KIND,
    CaseStatus,
    NoteStatus,
    Priority,
    RunStatus,
    Severity,
    Verdict,
)
from socflow.hitl import allowed_actions, note_kind_of
from socflow.tables import Alert, Case, ModelCall, WorkflowRun

QUEUE_LIMIT = 200
OPEN = "open"
ALL = "all"
STATUS_FILTERS = [OPEN, ALL, *[s.value for s in CaseStatus]]
ASSIGNEE_FILTERS = ["", "me", "unassigned"]
_STATUS_RANK = sql_case(
    (Case.status == CaseStatus.awaiting_approval.value, 0),
    (Case.status == CaseStatus.new.value, 1),
    (Case.status == CaseStatus.triaging.value, 1),
    (Case.status == CaseStatus.escalated.value, 2),
    else_=3,
)
_SEVERITY_RANK = sql_case(
    *[(Case.severity == s.value, -s.rank) for s in Severity],
    else_=0,
)
_PRIORITY_RANK = sql_case(
    *[(Case.priority == p.value, i) for i, p in enumerate(reversed(Priority))],
    else_=len(Priority),
)


@dataclass
class QueueFilters:
    status: str = OPEN
    severity: str = ""
    verdict: str = ""
    assignee: str = ""

    @classmethod
    def parse(cls, params: Any) -> QueueFilters:
        def pick(name: str, allowed: list[str], default: str) -> str:
            value = params.get(name) or default
            return value if value in allowed else default

        return cls(
            status=pick("status", STATUS_FILTERS, OPEN),
            severity=pick("severity", ["", *[s.value for s in Severity]], ""),
            verdict=pick("verdict", ["", *[v.value for v in Verdict]], ""),
            assignee=pick("assignee", ASSIGNEE_FILTERS, ""),
        )

    def query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


@dataclass
class QueueRow:
    case: Case
    alerts: int


def queue(session: Session, filters: QueueFilters, *, me: str) -> tuple[list[QueueRow], int]:
    """Cases awaiting approval first, then the other open ones; most severe and oldest first within."""
    stmt = select(Case)
    if filters.status == OPEN:
        stmt = stmt.where(Case.status != CaseStatus.closed.value)
    elif filters.status != ALL:
        stmt = stmt.where(Case.status == filters.status)
    if filters.severity:
        stmt = stmt.where(Case.severity == filters.severity)
    if filters.verdict:
        stmt = stmt.where(Case.verdict == filters.verdict)
    if filters.assignee == "me":
        stmt = stmt.where(Case.assignee == me)
    elif filters.assignee == "unassigned":
        stmt = stmt.where(Case.assignee.is_(None))
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    cases = list(
        session.scalars(
            stmt.order_by(_STATUS_RANK, _SEVERITY_RANK, _PRIORITY_RANK, Case.created_at, Case.id).limit(
                QUEUE_LIMIT
            )
        )
    )
    counts: dict[int, int] = {}
    if cases:
        rows = session.execute(
            select(Alert.case_id, func.count(Alert.id))
            .where(Alert.case_id.in_([c.id for c in cases]))
            .group_by(Alert.case_id)
        )
        counts = {int(cid): int(n) for cid, n in rows if cid is not None}
    return [QueueRow(c, counts.get(c.id, 0)) for c in cases], total


@dataclass
class NoteView:
    """One note kind on the case page: the note, its current revision, and the run waiting on it."""

    kind: str
    note: NoteOut | None
    draft: RevisionOut | None
    stale: bool
    pending: RunOut | None
    allowed_actions: list[str]

    @property
    def title(self) -> str:
        return self.kind.replace("_", " ").capitalize()

    @property
    def workflow(self) -> str | None:
        return self.pending.workflow if self.pending else None


@dataclass
class CasePage:
    detail: CaseDetail
    labels: dict[str, str]  # evidence_id -> "E3"
    evidence: list[tuple[str, EvidenceOut]]
    notes: list[NoteView]  # the primary note first: the one a decision waits on, else the default kind
    rationale: str | None
    analyst_labels: dict[str, Any] | None
    calibration: str | None  # whether the confidence is calibrated, from the assessment's audit event
    active_runs: bool
    runs: list[RunOut] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # proposed response actions (socflow.actions)

    @property
    def primary(self) -> NoteView:
        return self.notes[0]

    # the primary note's parts, for the decision form and the edit page
    @property
    def note(self) -> NoteOut | None:
        return self.primary.note

    @property
    def draft(self) -> RevisionOut | None:
        return self.primary.draft

    @property
    def stale(self) -> bool:
        return self.primary.stale

    @property
    def pending(self) -> RunOut | None:
        return self.primary.pending

    @property
    def allowed_actions(self) -> list[str]:
        return self.primary.allowed_actions


def _latest(audit: list[AuditOut], action: str) -> AuditOut | None:
    found = [e for e in audit if e.action == action]
    return found[-1] if found else None


def _note_view(kind: str, notes: list[NoteOut], waiting: list[RunOut]) -> NoteView:
    of_kind = [n for n in notes if n.kind == kind]
    note = of_kind[-1] if of_kind else None
    draft = None
    if note is not None:
        current = [r for r in note.revisions if r.revision == note.current_revision]
        draft = current[0] if current else (note.revisions[-1] if note.revisions else None)
    pending_runs = [r for r in waiting if note_kind_of(r.pending_interrupt) == kind]
    pending = pending_runs[-1] if pending_runs else None
    return NoteView(
        kind=kind,
        note=note,
        draft=draft,
        stale=bool(note is not None and note.status == NoteStatus.draft.value and note.stale_at is not None),
        pending=pending,
        allowed_actions=[a.value for a in allowed_actions(pending.pending_interrupt)] if pending else [],
    )


def case_page(session: Session, case_id: int) -> CasePage:
    """A case with every note kind its workflows drafted (each approval request names its note kind)."""
    detail = case_detail(session, case_id)
    evidence = [(f"E{i}", e) for i, e in enumerate(detail.evidence, start=1)]
    waiting = [r for r in detail.runs if r.status == RunStatus.awaiting_input.value]
    kinds = [note_kind_of(r.pending_interrupt) for r in reversed(waiting)]  # latest decision first
    kinds += [DEFAULT_NOTE_KIND] + [n.kind for n in detail.notes]
    views = [_note_view(kind, detail.notes, waiting) for kind in dict.fromkeys(kinds)]
    views = views[:1] + [v for v in views[1:] if v.note is not None or v.pending is not None]
    assessed = _latest(detail.audit, "case.assessed")
    labelled = _latest(detail.audit, "case.labelled")
    label_of = {e.evidence_id: label for label, e in evidence}
    return CasePage(
        detail=detail,
        labels={e.evidence_id: label for label, e in evidence},
        evidence=evidence,
        notes=views,
        rationale=(assessed.data.get("rationale") if assessed else None),
        calibration=(assessed.data.get("calibration") if assessed else None),
        analyst_labels=(labelled.data if labelled else None),
        active_runs=any(r.status in {s.value for s in ACTIVE_RUN_STATUSES} for r in detail.runs),
        runs=list(reversed(detail.runs)),
        actions=[
            {
                "item_id": a.item_id,
                "action": a.action,
                "target": a.target,
                "evidence": [label_of.get(e, e) for e in a.evidence_ids],
                "status": a.status,
                "decided_by": a.decided_by,
                "outcome": a.result or a.error or "",
            }
            for a in detail.actions
        ],
    )


def run_states(session: Session, case_id: int) -> dict[str, Any]:
    """What the case page polls while a run is moving: each run's status and the case's status."""
    case = session.get(Case, case_id)
    runs = session.scalars(
        select(WorkflowRun).where(WorkflowRun.case_id == case_id).order_by(WorkflowRun.created_at)
    )
    return {
        "case_status": case.status if case else None,
        "runs": {r.id: r.status for r in runs},
    }


def model_calls(session: Session, case_id: int, *, limit: int = 200) -> list[ModelCall]:
    stmt = select(ModelCall).where(ModelCall.case_id == case_id).order_by(ModelCall.id).limit(limit)
    return list(session.scalars(stmt))


def recent_runs(session: Session, workflow: str, *, limit: int = 10) -> list[WorkflowRun]:
    stmt = (
        select(WorkflowRun)
        .where(WorkflowRun.workflow == workflow)
        .order_by(WorkflowRun.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(int((now - then).total_seconds()), 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
