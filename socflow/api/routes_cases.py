"""``/api/v1/cases``: the queue, a case with everything behind it, assignment, merge, decisions, export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socflow.actions.records import list_actions
from socflow.api.deps import RowId, Services, actor, allow, db, services
from socflow.api.models import (
    AlertOut,
    AuditOut,
    CaseActionOut,
    CaseDetail,
    CaseOut,
    CasePatch,
    DecisionIn,
    DecisionOut,
    EvidenceOut,
    MergeIn,
    MoveAlertIn,
    NoteOut,
    ObservableOut,
    Page,
    RevisionOut,
    RunOut,
    TechniqueOut,
)
from socflow.auth import Principal, Role
from socflow.decisions import submit_decision
from socflow.enums import CaseStatus, Severity, Verdict
from socflow.errors import ConflictError
from socflow.export import ExportFormat, export_case
from socflow.store import CaseStore
from socflow.tables import Case, Note, WorkflowRun

router = APIRouter(prefix="/cases", tags=["cases"])


@router.get("", response_model=Page[CaseOut])
def list_cases(
    status: CaseStatus | None = None,
    severity: Severity | None = None,
    verdict: Verdict | None = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    _: Principal = allow(Role.analyst, Role.engineer),
    session: Session = Depends(db),
) -> Page[CaseOut]:
    store = CaseStore(session)
    filters = {"status": status, "severity": severity, "verdict": verdict, "assignee": assignee}
    count = select(func.count(Case.id))
    for column, value in (
        (Case.status, status),
        (Case.severity, severity),
        (Case.verdict, verdict),
        (Case.assignee, assignee),
    ):
        if value is not None:
            count = count.where(column == str(value))
    rows = store.list_cases(
        **{k: (str(v) if v is not None else None) for k, v in filters.items()}, limit=limit, offset=offset
    )
    return Page[CaseOut](
        total=int(session.scalar(count) or 0),
        limit=limit,
        offset=offset,
        items=[CaseOut.model_validate(c) for c in rows],
    )


def case_detail(session: Session, case_id: RowId) -> CaseDetail:
    store = CaseStore(session)
    case = store.get_case(case_id)
    notes = list(session.scalars(select(Note).where(Note.case_id == case_id).order_by(Note.id)))
    runs = session.scalars(
        select(WorkflowRun).where(WorkflowRun.case_id == case_id).order_by(WorkflowRun.created_at)
    )
    return CaseDetail(
        **CaseOut.model_validate(case).model_dump(),
        alerts_total=store.count_alerts(case_id=case_id),
        alerts=[AlertOut.model_validate(a) for a in store.list_alerts(case_id=case_id, limit=1000)],
        observables=[ObservableOut.model_validate(o) for o in store.list_observables(case_id=case_id)],
        techniques=[TechniqueOut.model_validate(t) for t in store.list_techniques(case_id)],
        evidence=[EvidenceOut.model_validate(e) for e in store.list_evidence(case_id)],
        notes=[
            NoteOut(
                **{k: getattr(n, k) for k in ("id", "kind", "status", "current_revision", "stale_at")},
                revisions=[RevisionOut.model_validate(r) for r in store.list_revisions(n.id)],
            )
            for n in notes
        ],
        runs=[RunOut.model_validate(r) for r in runs],
        audit=[AuditOut.model_validate(e) for e in store.list_audit(case_id=case_id)],
        actions=[CaseActionOut.model_validate(a) for a in list_actions(session, case_id)],
    )


@router.get("/{case_id}", response_model=CaseDetail)
def get_case(
    case_id: RowId, _: Principal = allow(Role.analyst, Role.engineer), session: Session = Depends(db)
) -> CaseDetail:
    return case_detail(session, case_id)


EXPORT_CONTENT = {
    "application/json": {"schema": {"type": "object"}},
    "text/markdown": {"schema": {"type": "string"}},
    "application/stix+json": {"schema": {"type": "object"}},
}


@router.get(
    "/{case_id}/export",
    response_class=Response,
    responses={200: {"description": "the case as a file (an attachment)", "content": EXPORT_CONTENT}},
)
def export(
    case_id: RowId,
    fmt: Annotated[ExportFormat, Query(alias="format")] = "json",
    _: Principal = allow(Role.analyst),
    session: Session = Depends(db),
) -> Response:
    """The case as JSON, Markdown or a STIX 2.1 bundle (``socflow.export``; the same as
    ``socflow cases export``)."""
    result = export_case(session, case_id, fmt)
    return Response(
        result.content,
        media_type=result.media_type,
        headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
    )


@router.patch("/{case_id}", response_model=CaseOut)
def patch_case(
    case_id: RowId, body: CasePatch, who: Principal = allow(Role.analyst), svc: Services = Depends(services)
) -> CaseOut:
    with svc.factory() as session, session.begin():
        store = CaseStore(session)
        case = store.update_case(case_id, actor=actor(who), assignee=body.assignee, severity=body.severity)
        if body.assignee:  # an assignment is an analyst action: it acknowledges the case (once)
            store.acknowledge_case(case_id, actor=who.name, via="assigned")
        return CaseOut.model_validate(case)


@router.post("/{case_id}/merge", response_model=CaseOut)
def merge_case(
    case_id: RowId, body: MergeIn, who: Principal = allow(Role.analyst), svc: Services = Depends(services)
) -> CaseOut:
    """Move every alert of this case into ``into``; this case closes as merged."""
    with svc.factory() as session, session.begin():
        return CaseOut.model_validate(CaseStore(session).merge_cases(case_id, body.into, actor=actor(who)))


@router.post("/{case_id}/alerts/{alert_id}/move", response_model=AlertOut)
def move_alert(
    case_id: RowId,
    alert_id: RowId,
    body: MoveAlertIn,
    who: Principal = allow(Role.analyst),
    svc: Services = Depends(services),
) -> AlertOut:
    """Move one alert of this case to another case."""
    with svc.factory() as session, session.begin():
        store = CaseStore(session)
        alert = store.get_alert(alert_id)
        if alert.case_id != case_id:
            from socflow.errors import NotFoundError

            raise NotFoundError(f"alert {alert_id} is not in case {case_id}")
        return AlertOut.model_validate(store.move_alert(alert_id, body.case_id, actor=actor(who)))


@router.post("/{case_id}/decision", response_model=DecisionOut)
def decide(
    case_id: RowId, body: DecisionIn, who: Principal = allow(Role.analyst), svc: Services = Depends(services)
) -> DecisionOut:
    """Approve, edit, reject or escalate the drafted note (the same path as ``socflow approve``).

    409 when the draft is stale (a new alert joined the case) or already decided.
    """
    result = submit_decision(svc.runner, case_id, body.decision(who.name), run_id=body.run_id)
    with svc.factory() as session:
        case = CaseStore(session).get_case(case_id)
    if not result.advanced:
        raise ConflictError(f"run {result.run_id} was already decided")
    return DecisionOut(run_id=result.run_id, status=result.status.value, case_status=case.status)
