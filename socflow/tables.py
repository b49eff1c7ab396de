"""All socflow tables (SQLAlchemy 2 typed mappings). No behaviour lives here.

The schema is created only by Alembic (``migrations/``); the LangGraph checkpointer owns the tables
``checkpoints``, ``writes``, ``checkpoint_blobs``, ``checkpoint_writes`` and ``checkpoint_migrations``,
and no socflow table may use those names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHECKPOINTER_TABLES = frozenset(
    {"checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them without an offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids that stay INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str | None] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(32), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    grouping_key: Mapped[str | None] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # -- harden (revision 0010): an alert of the case looked like a prompt injection --
    injection_flag: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    injection_reason: Mapped[str | None] = mapped_column(Text)
    # -- console -- (revision 0013): the first analyst action on the case (time to acknowledge)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("source", "dedup_key", name="uq_alerts_source_dedup_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    source_ref: Mapped[str | None] = mapped_column(String(300))
    dedup_key: Mapped[str] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str | None] = mapped_column(String(200), index=True)
    rule_name: Mapped[str | None] = mapped_column(String(500))
    rule_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    entities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    grouping_key: Mapped[str | None] = mapped_column(String(300), index=True)
    grouping_reason: Mapped[str | None] = mapped_column(Text)
    # -- harden (revision 0010): sent by a token bound to ``source`` (or an operator door); injection flag --
    sender_bound: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    injection_flag: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    injection_reason: Mapped[str | None] = mapped_column(Text)


class Observable(Base):
    __tablename__ = "observables"
    __table_args__ = (
        UniqueConstraint("alert_id", "type", "value", name="uq_observables_alert_type_value"),
        Index("ix_observables_type_value", "type", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(2048))


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="case_note")
    status: Mapped[str] = mapped_column(String(16))
    current_revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stale_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NoteRevision(Base):
    __tablename__ = "note_revisions"
    __table_args__ = (UniqueConstraint("note_id", "revision", name="uq_note_revisions_note_revision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    author_kind: Mapped[str] = mapped_column(String(16))
    diff: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(100))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ModelCall(Base):
    """Append-only audit of every model call, success or failure (revision 0002)."""

    __tablename__ = "model_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    node: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(500))
    model_revision: Mapped[str | None] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt: Mapped[str] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    parsed_output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)


class CaseTechnique(Base):
    """A validated ATT&CK technique on a case (revision 0003). Names and tactics come from the catalog."""

    __tablename__ = "case_techniques"
    __table_args__ = (
        UniqueConstraint("case_id", "technique_id", "source", name="uq_case_techniques_case_tech_source"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    technique_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(300))
    tactics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    evidence_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evidence(Base):
    """What a tool returned for a case, with a stable id a note can cite (revision 0004)."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("case_id", "evidence_id", name="uq_evidence_case_evidence_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    evidence_id: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str | None] = mapped_column(String(32))
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkflowRun(Base):
    """One run of a workflow graph for a case; its LangGraph thread id is its id (revision 0005)."""

    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100), index=True)
    workflow_version: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pending_interrupt_id: Mapped[str | None] = mapped_column(String(64))
    pending_interrupt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Approval(Base):
    """An analyst's decision on one interrupt; one decision per interrupt (revision 0005)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("interrupt_id", name="uq_approvals_interrupt_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    interrupt_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token: only its sha256 is stored; the token is shown once at creation (revision 0006)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # -- harden (revision 0010): the sources this token may send (NULL: any) and its forced ingest format --
    sources: Mapped[list[Any] | None] = mapped_column(JSON)
    ingest_format: Mapped[str | None] = mapped_column(String(32))


class ConnectorCursor(Base):
    """Where a pull connector stopped, so a restart neither misses nor repeats alerts (revision 0006)."""

    __tablename__ = "connector_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- core-a --
class RunStep(Base):
    """What one graph node of a run returned, written in the same transaction as the node's rows: a node
    re-run after a crash (LangGraph re-runs a node whose checkpoint was not written) returns this instead
    of doing its work twice. ``key`` tells visits of the same node apart (revision 0008)."""

    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "node", "key", name="uq_run_steps_run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    node: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(64))
    update: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- harden --
class DeadLetter(Base):
    """An ingest item a door refused: door, claimed source, reason, payload cut short (revision 0010)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    door: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200), index=True)
    item_index: Mapped[int | None] = mapped_column(Integer)
    line: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)


class WebSession(Base):
    """A signed-in web session held on the server: the cookie names it; logout ends it (revision 0010)."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's session id
    # who the session is for: an API token (a token login) or, since revision 0020, a user account
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- users (revision 0020) --
class User(Base):
    """A person who signs in to the web UI: a local account (argon2 password hash) or an account made
    at its first OpenID Connect sign-in (``oidc_issuer`` + ``oidc_subject``, no password). Disabled
    accounts cannot sign in and their sessions stop working (revision 0020)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_identity"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- prod-a --
class OutboxMessage(Base):
    """A delivery leaving socflow (write-back of a decision to the alert's own system, a webhook), written
    in the deciding transaction and delivered with retries by ``socflow.outbox`` (revision 0014).

    ``id`` is the delivery id receivers use to drop repeats; ``dedup_key`` makes a re-run of the deciding
    step add nothing. ``status``: pending -> delivered, or failed after ``max_attempts`` (``socflow outbox
    retry`` makes it pending again), or skipped when no target of its kind is configured.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(300))
    target: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- detect --
class SuppressionProposal(Base):
    """A suppression offered from a case closed as false positive: the rule and the field values that made it
    fire; an engineer accepts (it then applies on the next detection pass) or declines it (revision 0012)."""

    __tablename__ = "suppression_proposals"
    __table_args__ = (UniqueConstraint("case_id", "rule_id", name="uq_suppression_proposals_case_rule"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(200), index=True)
    rule_name: Mapped[str | None] = mapped_column(String(500))
    match: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)


# -- intel --
class Indicator(Base):
    """A threat-intel indicator loaded from a feed file (STIX 2.1, MISP, CSV) or cached from a provider:
    its type (an ``ObservableType`` value) and normalized value, per source (revision 0016)."""

    __tablename__ = "indicators"
    __table_args__ = (
        UniqueConstraint("type", "value", "source", name="uq_indicators_type_value_source"),
        Index("ix_indicators_type_value", "type", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(100), index=True)
    confidence: Mapped[int | None] = mapped_column(Integer)  # 0-100, as STIX; None: the feed gave none
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    external_id: Mapped[str | None] = mapped_column(String(200))  # STIX id, MISP attribute uuid
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- response actions --
class CaseAction(Base):
    """A response action proposed for a case, its analyst sub-decision and its result (revision 0015).

    ``status``: proposed -> approved -> succeeded | failed, or proposed -> declined; ``refused`` when the
    action is not enabled in the deployment's catalog or its target failed validation (nothing ran).
    ``item_id`` is the id of the approval item the analyst decides (unique per case).
    """

    __tablename__ = "case_actions"
    __table_args__ = (UniqueConstraint("case_id", "item_id", name="uq_case_actions_case_item"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(36))
    item_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(300))
    evidence_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    rationale: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connector: Mapped[str | None] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(36))
    result: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
