"""Response and request bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from socflow.auth import Role
from socflow.enums import Severity
from socflow.hitl import Decision, DecisionFields
from socflow.schemas import IngestItem

T = TypeVar("T")


class _Rows(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    runs_queued: int
    items: list[IngestItem]


class AlertOut(_Rows):
    id: int
    source: str
    source_ref: str | None
    dedup_key: str
    received_at: datetime
    observed_at: datetime | None
    title: str
    description: str | None
    severity: str
    rule_id: str | None
    rule_name: str | None
    rule_tags: list[Any]
    entities: dict[str, Any]
    case_id: int | None
    grouping_key: str | None
    grouping_reason: str | None
    sender_bound: bool = False
    injection_flag: bool = False
    injection_reason: str | None = None


class AlertDetail(AlertOut):
    raw: dict[str, Any] | None


class CaseOut(_Rows):
    id: int
    title: str
    status: str
    severity: str
    priority: str | None
    verdict: str | None
    confidence: float | None
    assignee: str | None
    grouping_key: str | None
    created_at: datetime
    updated_at: datetime
    triaged_at: datetime | None
    approved_at: datetime | None
    closed_at: datetime | None
    injection_flag: bool = False
    injection_reason: str | None = None


class Page(BaseModel, Generic[T]):
    total: int
    limit: int
    offset: int
    items: list[T]


class ObservableOut(_Rows):
    type: str
    value: str
    alert_id: int


class TechniqueOut(_Rows):
    technique_id: str
    name: str
    tactics: list[Any]
    source: str
    confidence: float | None
    evidence_ids: list[Any]


class EvidenceOut(_Rows):
    evidence_id: str
    kind: str
    backend: str | None
    source_event_id: str | None
    observed_at: datetime | None
    summary: str
    data: dict[str, Any]


class RevisionOut(_Rows):
    revision: int
    body: str
    author: str
    author_kind: str
    diff: str | None
    comment: str | None
    created_at: datetime


class NoteOut(_Rows):
    id: int
    kind: str
    status: str
    current_revision: int
    stale_at: datetime | None
    revisions: list[RevisionOut] = Field(default_factory=list)


class RunOut(_Rows):
    id: str
    workflow: str
    workflow_version: str
    case_id: int | None
    status: str
    pending_interrupt: dict[str, Any] | None
    attempts: int
    error_kind: str | None
    error: str | None = Field(default=None, description="why the run failed (its case needs attention)")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class AuditOut(_Rows):
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]


class CaseActionOut(_Rows):
    """A proposed response action, its analyst sub-decision and its result (``docs/actions.md``)."""

    item_id: str
    action: str
    target_type: str
    target: str
    evidence_ids: list[str]
    status: str = Field(description="proposed, approved, declined, refused, succeeded or failed")
    decided_by: str | None
    decided_at: datetime | None
    connector: str | None
    delivery_id: str | None
    result: str | None
    reference: str | None
    error: str | None
    finished_at: datetime | None


class CaseDetail(CaseOut):
    alerts_total: int
    alerts: list[AlertOut] = Field(description="the first 1000; page through GET /alerts?case_id= for more")
    observables: list[ObservableOut]
    techniques: list[TechniqueOut]
    evidence: list[EvidenceOut]
    notes: list[NoteOut]
    runs: list[RunOut]
    audit: list[AuditOut]
    actions: list[CaseActionOut] = Field(default_factory=list, description="proposed response actions")


class CasePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(default=None, max_length=200)
    severity: Severity | None = None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: int = Field(description="the case that receives this case's alerts", ge=1, le=2**63 - 1)


class MoveAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: int = Field(description="the case the alert moves to", ge=1, le=2**63 - 1)


class DecisionIn(DecisionFields):
    """The analyst's decision (``socflow.hitl``); ``run_id`` names the run when several wait."""

    run_id: str | None = Field(default=None, max_length=36)

    def decision(self, user: str) -> Decision:
        return Decision(user=user, **self.model_dump(exclude={"run_id"}))


class DecisionOut(BaseModel):
    run_id: str
    status: str
    case_status: str


class WorkflowOut(BaseModel):
    name: str
    version: str
    description: str
    queue: str
    origin: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@ -]+$")
    role: Role
    expires_days: int | None = Field(default=None, ge=1, le=3650)
    sources: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=100,
        description="the alert sources this token may send (omitted: any source; only alerts from a "
        "token bound to their source can ever be auto-closed)",
    )
    ingest_format: str | None = Field(
        default=None, max_length=32, description="force this alert format for everything the token sends"
    )


class TokenOut(_Rows):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    sources: list[str] | None = None
    ingest_format: str | None = None


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its hash is stored")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
