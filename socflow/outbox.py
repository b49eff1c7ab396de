"""The outbox: everything that leaves socflow after a decision, written in the deciding transaction and
delivered later with retries, so a target that is down loses nothing and never blocks a decision.

- :func:`enqueue_writeback` (called inside the transaction that applies an analyst's decision) adds one
  row per target kind for the case's source alerts: ``elastic`` (Elastic Security / OpenSearch alert
  documents, from the ``_index``/``_id`` the connector kept), ``splunk`` (notable ``event_id``), and
  ``webhook`` (every other source). Mapping: approve or edit with a benign or false-positive verdict ->
  ``closed``; escalate, or approve with any other verdict -> ``acknowledged``; reject -> nothing (the
  case goes back to triage). A policy auto-close -> ``closed``.
- :func:`deliver_outbox` (a Celery task ``socflow.deliver_outbox``, or in-process through the periodic
  jobs) claims due rows, sends each through its target (``socflow.writeback``) and records the outcome:
  ``delivered``; ``pending`` again with exponential backoff (``SOCFLOW_WRITEBACK__BACKOFF_SECONDS`` doubled
  per attempt, capped) when the target is unreachable, rate-limited or failing (5xx); ``failed`` on a
  refusal (other 4xx) or after ``SOCFLOW_WRITEBACK__MAX_ATTEMPTS``; ``skipped`` when no target of that kind
  is configured. ``last_error`` keeps the reason (credentials redacted).
- Notifications (``socflow.notify``) are outbox rows too, with targets ``notify.slack``, ``notify.email``
  and ``notify.webhook`` (``socflow.notify_channels``), delivered, retried and listed the same way.
- Approved response actions (``socflow.actions``) are rows of target ``action``, run by
  ``socflow.actions.records.ActionTarget`` through their connector (never the write-back webhook).
- :func:`retry` makes failed or skipped rows pending again (``socflow outbox retry``, the API, the UI).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from socflow.actions.catalog import Catalog
from socflow.actions.records import ActionTarget
from socflow.db import make_engine, session_factory
from socflow.enums import Verdict
from socflow.http import RemoteError
from socflow.notify_channels import build_notify_targets
from socflow.schemas import now_utc
from socflow.settings import Settings
from socflow.tables import Alert, Case, OutboxMessage
from socflow.writeback import Target, build_targets

CLOSING_VERDICTS = {Verdict.false_positive.value, Verdict.benign_positive.value}
REFS_PER_MESSAGE = 500
MAX_ALERTS = 10_000
CLAIM_SECONDS = 300  # a claimed row is retried after this long if its deliverer died mid-send
MAX_ERROR = 1000
NOTIFY_PREFIX = "notify."  # notification rows (socflow.notify): their own channels, never the write-back ones


class OutboxStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    skipped = "skipped"


def writeback_status(action: str, verdict: str | None) -> str | None:
    """The status the source alerts get for a decision (None: no write-back)."""
    if action == "auto_close":
        return "closed"
    if action in ("approve", "edit"):
        return "closed" if verdict in CLOSING_VERDICTS else "acknowledged"
    if action == "escalate":
        return "acknowledged"
    return None


def _field(decision: Any, name: str) -> Any:
    return decision.get(name) if isinstance(decision, Mapping) else getattr(decision, name, None)


def _target_and_ref(alert: Alert) -> tuple[str, Any]:
    raw = alert.raw if isinstance(alert.raw, dict) else {}
    if isinstance(raw.get("_index"), str) and isinstance(raw.get("_id"), str):
        return "elastic", {"index": raw["_index"], "id": raw["_id"], "uuid": alert.source_ref}
    if (alert.source == "splunk-es" or "event_id" in raw) and alert.source_ref:
        return "splunk", alert.source_ref
    return "webhook", {"alert_id": alert.id, "source": alert.source, "source_ref": alert.source_ref}


def enqueue_writeback(session: Session, case: Case, decision: Any) -> list[OutboxMessage]:
    """Outbox rows for ``decision`` on ``case``, added to ``session`` (the deciding transaction).

    ``decision``: a ``socflow.decisions.Decision`` or a mapping with ``action``, ``user`` and optionally
    ``reason``, ``run_id`` and ``step`` (which, with the case, make the rows' dedup key: adding the same
    decision twice adds nothing).
    """
    action = str(_field(decision, "action") or "")
    status = writeback_status(action, case.verdict)
    if status is None:
        return []
    run_id = _field(decision, "run_id") or "-"
    step = _field(decision, "step") or 0
    alerts = session.scalars(
        select(Alert).where(Alert.case_id == case.id).order_by(Alert.id).limit(MAX_ALERTS)
    ).all()
    groups: dict[str, list[Any]] = {}
    for alert in alerts:
        kind, ref = _target_and_ref(alert)
        groups.setdefault(kind, []).append(ref)
    now = now_utc()
    base = {
        "case_id": case.id,
        "status": status,
        "action": action,
        "analyst": _field(decision, "user"),
        "verdict": case.verdict,
        "reason": _field(decision, "reason"),
        "decided_at": now.isoformat(),
    }
    rows: list[OutboxMessage] = []
    for kind, refs in sorted(groups.items()):
        for n in range(0, len(refs), REFS_PER_MESSAGE):
            key = f"writeback:{case.id}:{run_id}:{step}:{kind}:{n // REFS_PER_MESSAGE}"
            if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == key)):
                continue
            row = OutboxMessage(
                id=str(uuid.uuid4()),
                dedup_key=key,
                target=kind,
                case_id=case.id,
                status=OutboxStatus.pending.value,
                payload={**base, "refs": refs[n : n + REFS_PER_MESSAGE]},
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            rows.append(row)
    return rows


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def _claim(factory: sessionmaker[Session], now: datetime, limit: int) -> list[OutboxMessage]:
    """Due pending rows, each claimed by moving its next attempt ``CLAIM_SECONDS`` ahead (compare-and-set:
    two deliverers never send one row at once)."""
    claimed: list[OutboxMessage] = []
    with factory() as session:
        due = session.execute(
            select(OutboxMessage.id, OutboxMessage.next_attempt_at)
            .where(OutboxMessage.status == OutboxStatus.pending.value, OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.created_at)
            .limit(limit)
        ).all()
    for row_id, due_at in due:
        with factory() as session, session.begin():
            won = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row_id,
                    OutboxMessage.status == OutboxStatus.pending.value,
                    OutboxMessage.next_attempt_at == due_at,
                )
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS), updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if won:
                row = session.get(OutboxMessage, row_id)
                assert row is not None
                session.expunge(row)
                claimed.append(row)
    return claimed


def deliver_outbox(
    settings: Settings,
    *,
    factory: sessionmaker[Session] | None = None,
    targets: Mapping[str, Target] | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], datetime] = now_utc,
    limit: int = 100,
) -> DeliveryReport:
    """One delivery pass over the due outbox rows (see the module docstring). Safe to run concurrently."""
    own_engine = factory is None
    factory = factory or session_factory(make_engine(settings.database.url))
    wb = settings.writeback
    built = targets is None
    active: dict[str, Target] = (
        dict(targets)
        if targets is not None
        else {
            **build_targets(wb, transport=transport),
            **build_notify_targets(settings.notify, wb.case_url, transport=transport),
        }
    )
    if "action" not in active:  # approved response actions (socflow.actions): always this target
        active["action"] = ActionTarget(factory, Catalog.load(settings.actions.file), transport=transport)
    report = DeliveryReport()
    try:
        for row in _claim(factory, clock(), limit):
            notification = row.target.startswith(NOTIFY_PREFIX)
            own_target = notification or row.target == "action"  # never falls back to the webhook
            target = active.get(row.target) or (None if own_target else active.get("webhook"))
            error: str | None = None
            status = OutboxStatus.delivered
            attempts = row.attempts + 1
            next_at = clock()
            if target is None:
                status = OutboxStatus.skipped
                error = (
                    f"no {row.target} channel is configured (SOCFLOW_NOTIFY__*)"
                    if notification
                    else f"no write-back target for {row.target} is configured (SOCFLOW_WRITEBACK__*)"
                )
                attempts = row.attempts
            else:
                try:
                    target.deliver(row.id, row.payload)
                except RemoteError as exc:
                    error = str(exc)[:MAX_ERROR]
                    if exc.retryable and attempts < wb.max_attempts:
                        status = OutboxStatus.pending
                        wait = min(wb.backoff_seconds * 2 ** (attempts - 1), wb.backoff_max_seconds)
                        next_at = clock() + timedelta(seconds=wait)
                    else:
                        status = OutboxStatus.failed
            with factory() as session, session.begin():
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id)
                    .values(
                        status=status.value,
                        attempts=attempts,
                        last_error=error,
                        next_attempt_at=next_at,
                        updated_at=clock(),
                        delivered_at=clock() if status is OutboxStatus.delivered else None,
                    )
                )
            if status is OutboxStatus.delivered:
                report.delivered += 1
            elif status is OutboxStatus.pending:
                report.retrying += 1
            elif status is OutboxStatus.failed:
                report.failed += 1
            else:
                report.skipped += 1
    finally:
        if built:
            for t in active.values():
                t.close()
        if own_engine:
            factory.kw["bind"].dispose()
    return report


def list_outbox(
    session: Session, *, status: str | None = None, case_id: int | None = None, limit: int = 100
) -> Sequence[OutboxMessage]:
    """Outbox rows, newest first; ``status`` ``open`` means pending or failed."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if status == "open":
        stmt = stmt.where(OutboxMessage.status.in_([OutboxStatus.pending.value, OutboxStatus.failed.value]))
    elif status:
        stmt = stmt.where(OutboxMessage.status == status)
    if case_id is not None:
        stmt = stmt.where(OutboxMessage.case_id == case_id)
    return session.scalars(stmt).all()


def retry(session: Session, ids: Sequence[str] | None = None) -> int:
    """Make failed or skipped rows (all of them, or ``ids``) pending and due now; returns how many."""
    now = now_utc()
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.status.in_([OutboxStatus.failed.value, OutboxStatus.skipped.value]))
        .values(status=OutboxStatus.pending.value, attempts=0, next_attempt_at=now, updated_at=now)
    )
    if ids:
        stmt = stmt.where(OutboxMessage.id.in_(list(ids)))
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
