"""Notifications: escalations, assignments, new critical cases and SLA breaches, sent to Slack, email and
signed webhooks through the outbox (``socflow.outbox``: retried with backoff, nothing lost, visible with
its last error in ``socflow outbox list``).

Events come from the audit trail, which every case change writes in its own transaction, so an event that
happened is never missed and one that was rolled back never notifies:

- ``escalated``: a ``case.status_changed`` event to ``escalated`` (an analyst's escalate decision, or an
  approved note whose verdict is not benign, which the triage workflow escalates);
- ``assigned``: a ``case.updated`` event that sets a new assignee (API ``PATCH /cases/{id}``, the UI's
  "assign to me");
- ``critical_case``: an open case whose severity is ``critical`` after an event that can set it (created
  critical, or raised by a joining or moved alert, a merge or a severity edit): once per case;
- ``sla_breach``: a case past its time to acknowledge (``cases.acknowledged_at`` still empty: nobody
  opened, assigned or decided it) or its time to decide (no analyst decision and not closed), per severity
  (``SOCFLOW_NOTIFY__SLA_ACKNOWLEDGE_SECONDS`` / ``SLA_DECIDE_SECONDS``): once per case per SLA.

``notify_pass`` (the periodic job ``notify``) reads the audit events after its cursor (``connector_cursors``
row ``notify.audit``) and the open cases past an SLA, and adds one outbox row per event and routed channel
(target ``notify.slack``, ``notify.email`` or ``notify.webhook``). Each row's dedup key names the event
(the audit event id, the case, or the case and SLA) and the channel, so passes that overlap, run twice or
run concurrently add each notification once. The cursor only moves past events older than
``settle_seconds`` (a transaction that committed late is still read). Events and SLA breaches older than
``lookback_seconds`` are never notified (a first pass, or a job back after a long stop, sends no flood of
stale news). The case fields a row carries are the case's when the row is added.

Routing (``routes``: event kind -> channels) is off by default; see docs/notifications.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.enums import CaseStatus, Severity
from socflow.errors import ConfigError
from socflow.schemas import now_utc
from socflow.settings import NotifySettings, Settings, check_routes, check_sla
from socflow.tables import Approval, AuditEvent, Case, ConnectorCursor, OutboxMessage
from socflow.untrusted import clean_text

CURSOR = "notify.audit"
TARGET_PREFIX = "notify."
MAX_EVENTS = 1000  # audit events read per pass (the rest on the next pass)
MAX_CASES = 500  # SLA breaches found per pass and SLA
MAX_TITLE = 200
MAX_REASON = 500
MAX_NAME = 100
WATCHED = (
    "case.status_changed",
    "case.updated",
    "case.created",
    "alert.ingested",
    "alert.moved",
    "case.merged",
)
RAISES_SEVERITY = ("case.created", "alert.ingested", "alert.moved", "case.merged")  # and severity edits


@dataclass(frozen=True)
class Routing:
    """Where each event kind goes, and the SLAs (settings merged with the YAML file)."""

    routes: dict[str, list[str]] = field(default_factory=dict)
    sla_acknowledge: dict[str, float] = field(default_factory=dict)
    sla_decide: dict[str, float] = field(default_factory=dict)


def load_routing(settings: NotifySettings) -> Routing:
    """The routing of ``settings``; a YAML ``file`` (``routes:``, ``sla: {acknowledge: ..., decide: ...}``)
    overrides the settings' routes and SLAs it names. ConfigError for an unreadable or invalid file."""
    routes = {k: list(v) for k, v in settings.routes.items()}
    ack = dict(settings.sla_acknowledge_seconds)
    decide = dict(settings.sla_decide_seconds)
    if settings.file is not None:
        try:
            data = yaml.safe_load(Path(settings.file).read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError("the file is not a mapping")
            if "routes" in data:
                file_routes = data["routes"] or {}
                if not isinstance(file_routes, dict) or not all(
                    isinstance(v, list) and all(isinstance(c, str) for c in v) for v in file_routes.values()
                ):
                    raise ValueError("routes: a mapping of event kind -> list of channels")
                check_routes(file_routes)
                routes = {str(k): list(v) for k, v in file_routes.items()}
            sla = data.get("sla") or {}
            if not isinstance(sla, dict):
                raise ValueError("sla: a mapping with acknowledge and decide")
            for name, target in (("acknowledge", ack), ("decide", decide)):
                if name in sla:
                    values = sla[name] or {}
                    if not isinstance(values, dict):
                        raise ValueError(f"sla.{name}: a mapping of severity -> seconds")
                    parsed = {str(k): float(v) for k, v in values.items()}
                    check_sla(parsed)
                    target.clear()
                    target.update(parsed)
        except (OSError, yaml.YAMLError, ValueError, TypeError) as exc:
            raise ConfigError(f"notification routing {settings.file}: {exc}") from None
    return Routing(routes={k: v for k, v in routes.items() if v}, sla_acknowledge=ack, sla_decide=decide)


@dataclass
class NotifyReport:
    events: int = 0  # audit events read
    enqueued: int = 0  # outbox rows added
    breaches: int = 0  # SLA breaches found (new or already notified)

    def counts(self) -> dict[str, int]:
        return {"events": self.events, "enqueued": self.enqueued, "breaches": self.breaches}


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _name(value: Any) -> str:
    return clean_text(str(value or ""), MAX_NAME).replace("\n", " ")


def case_snapshot(case: Case) -> dict[str, Any]:
    """The case fields a notification shows, bounded (the title comes from alerts: attacker text)."""
    return {
        "id": case.id,
        "title": clean_text(case.title or "", MAX_TITLE).replace("\n", " "),
        "severity": case.severity,
        "status": case.status,
        "assignee": _name(case.assignee) or None,
        "verdict": case.verdict,
        "created_at": _utc(case.created_at).isoformat(),
    }


class _Enqueuer:
    def __init__(self, session: Session, routing: Routing, now: datetime, report: NotifyReport) -> None:
        self.session = session
        self.routing = routing
        self.now = now
        self.report = report

    def add(self, kind: str, key: str, case: Case, data: dict[str, Any]) -> None:
        for channel in self.routing.routes.get(kind, []):
            dedup = f"notify:{kind}:{key}:{channel}"
            if self.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup)):
                continue
            self.session.add(
                OutboxMessage(
                    id=str(uuid.uuid4()),
                    dedup_key=dedup,
                    target=TARGET_PREFIX + channel,
                    case_id=case.id,
                    status="pending",
                    payload={"event": kind, "case": case_snapshot(case), **data},
                    attempts=0,
                    next_attempt_at=self.now,
                    created_at=self.now,
                    updated_at=self.now,
                )
            )
            self.report.enqueued += 1


def _scan_audit(enq: _Enqueuer, lookback: timedelta, settle: timedelta) -> None:
    session = enq.session
    cursor_row = session.get(ConnectorCursor, CURSOR)
    after = (cursor_row.cursor or {}).get("audit_id") if cursor_row is not None else None
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.action.in_(WATCHED), AuditEvent.at >= enq.now - lookback)
        .order_by(AuditEvent.id)
        .limit(MAX_EVENTS)
    )
    if isinstance(after, int):
        stmt = stmt.where(AuditEvent.id > after)
    events = list(session.scalars(stmt))
    enq.report.events = len(events)
    touched: set[int] = set()
    for ev in events:
        if ev.case_id is None:
            continue
        data = ev.data or {}
        if ev.action in RAISES_SEVERITY or (ev.action == "case.updated" and "severity" in data):
            touched.add(ev.case_id)
        if ev.action == "case.status_changed" and data.get("to") == CaseStatus.escalated.value:
            case = session.get(Case, ev.case_id)
            if case is not None:
                reason = clean_text(str(data.get("reason") or ""), MAX_REASON)
                details = {"actor": _name(ev.actor), "reason": reason or None, "at": _utc(ev.at).isoformat()}
                enq.add("escalated", f"audit{ev.id}", case, details)
        elif ev.action == "case.updated" and isinstance(data.get("assignee"), list):
            before, after_value = [*data["assignee"], None, None][:2]
            if after_value and after_value != before:
                case = session.get(Case, ev.case_id)
                if case is not None:
                    details = {
                        "actor": _name(ev.actor),
                        "assignee": _name(after_value),
                        "at": _utc(ev.at).isoformat(),
                    }
                    enq.add("assigned", f"audit{ev.id}", case, details)
    if touched and enq.routing.routes.get("critical_case"):
        critical = session.scalars(
            select(Case).where(
                Case.id.in_(sorted(touched)),
                Case.severity == Severity.critical.value,
                Case.status != CaseStatus.closed.value,
            )
        )
        for case in critical:
            enq.add("critical_case", str(case.id), case, {"at": _utc(case.created_at).isoformat()})
    # the cursor moves past the events old enough that nothing committed late can precede them
    settled = after if isinstance(after, int) else None
    for ev in events:
        if _utc(ev.at) > enq.now - settle:
            break
        settled = ev.id
    if settled is not None and settled != after:
        if cursor_row is None:
            session.add(ConnectorCursor(name=CURSOR, cursor={"audit_id": settled}, updated_at=enq.now))
        else:
            cursor_row.cursor = {"audit_id": settled}
            cursor_row.updated_at = enq.now


def _scan_sla(enq: _Enqueuer, lookback: timedelta) -> None:
    session = enq.session
    for sla, limits in (("acknowledge", enq.routing.sla_acknowledge), ("decide", enq.routing.sla_decide)):
        for severity, seconds in sorted(limits.items()):
            due = timedelta(seconds=seconds)
            stmt = select(Case).where(
                Case.severity == severity,
                Case.status != CaseStatus.closed.value,
                Case.created_at <= enq.now - due,
                Case.created_at >= enq.now - due - lookback,  # breached within the lookback window
            )
            if sla == "acknowledge":
                stmt = stmt.where(Case.acknowledged_at.is_(None))
            else:
                stmt = stmt.where(~exists().where(Approval.case_id == Case.id))
            for case in session.scalars(stmt.order_by(Case.created_at).limit(MAX_CASES)):
                enq.report.breaches += 1
                breached_at = _utc(case.created_at) + due
                details = {"sla": sla, "sla_seconds": seconds, "breached_at": breached_at.isoformat()}
                enq.add("sla_breach", f"{case.id}:{sla}", case, details)


def notify_pass(
    settings: Settings,
    *,
    factory: sessionmaker[Session] | None = None,
    clock: Callable[[], datetime] = now_utc,
) -> NotifyReport:
    """One pass: notifications for the audit events since the cursor and for new SLA breaches, added to
    the outbox (``deliver_outbox`` sends them). Idempotent; a pass that loses a race to a concurrent one
    adds nothing and leaves the work to the next pass."""
    report = NotifyReport()
    routing = load_routing(settings.notify)
    if not routing.routes:
        return report
    own_engine = factory is None
    factory = factory or session_factory(make_engine(settings.database.url))
    cfg = settings.notify
    try:
        with factory() as session:
            try:
                with session.begin():
                    enq = _Enqueuer(session, routing, clock(), report)
                    lookback = timedelta(seconds=cfg.lookback_seconds)
                    _scan_audit(enq, lookback, timedelta(seconds=cfg.settle_seconds))
                    if routing.routes.get("sla_breach"):
                        _scan_sla(enq, lookback)
            except IntegrityError:  # a concurrent pass added the same rows (or the cursor) first
                return NotifyReport()
    finally:
        if own_engine:
            factory.kw["bind"].dispose()
    return report
