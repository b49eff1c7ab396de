"""Tuning from decisions: a case closed as false positive offers suppression proposals.

For every pack alert (source ``socflow-sigma``) of a case closed with verdict ``false_positive``,
:func:`propose` records one pending proposal: the rule, and the values of the rule's own detection fields in
the events that made it fire (bounded: at most ``MAX_FIELDS`` fields, ``MAX_VALUES`` values each, and
``host.name``). An engineer accepts or declines it (``socflow siem tuning list|accept|decline``); each
decision is an audit event, in the same transaction.
Accepted proposals are read by every detection pass (:func:`accepted_suppressions`), so they take effect on
the next pass, as allow-list suppressions with id ``proposal-<id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import ConflictError, NotFoundError
from socflow.schemas import now_utc
from socflow.tables import Alert, AuditEvent, Case, SuppressionProposal
from tools.siem.detect import ALERT_SOURCE
from tools.siem.suppress import Suppression

PENDING, ACCEPTED, DECLINED = "pending", "accepted", "declined"
MAX_FIELDS = 6
MAX_VALUES = 20
MAX_VALUE_CHARS = 500
#: Fields that identify an event rather than describe behaviour: never proposed.
_SKIP_FIELDS = {"EventID", "Channel", "Provider_Name", "EventRecordID", "TimeCreated"}


def _values(events: list[dict[str, Any]], name: str) -> list[str]:
    out: list[str] = []
    for event in events:
        value = event.get(name)
        text = str(value) if isinstance(value, str | int) else ""
        if text and len(text) <= MAX_VALUE_CHARS and text not in out:
            out.append(text)
    return out[:MAX_VALUES]


def proposal_match(alert: Alert, rule_fields: tuple[str, ...]) -> dict[str, list[str]]:
    """The field values that made the rule fire, from the events the alert carries."""
    raw = alert.raw or {}
    events = [e for e in raw.get("events", []) if isinstance(e, dict)]
    match: dict[str, list[str]] = {}
    for name in rule_fields:
        if name in _SKIP_FIELDS or len(match) >= MAX_FIELDS:
            continue
        values = _values(events, name)
        if values:
            match[name] = values
    hosts = [h for h in (alert.entities or {}).get("hosts", []) if isinstance(h, str)][:MAX_VALUES]
    if hosts:
        match["host.name"] = hosts
    return match


def propose(
    factory: sessionmaker[Session], rule_fields: Callable[[str], tuple[str, ...]]
) -> list[SuppressionProposal]:
    """Pending proposals for pack alerts of cases closed as false positive that have none yet."""
    created: list[SuppressionProposal] = []
    with factory() as session, session.begin():
        rows = session.execute(
            select(Alert, Case)
            .join(Case, Alert.case_id == Case.id)
            .where(Case.verdict == "false_positive", Case.status == "closed", Alert.source == ALERT_SOURCE)
            .order_by(Alert.id)
        ).all()
        existing = {(p.case_id, p.rule_id) for p in session.scalars(select(SuppressionProposal)).all()}
        for alert, case in rows:
            if not alert.rule_id or (case.id, alert.rule_id) in existing:
                continue
            match = proposal_match(alert, rule_fields(alert.rule_id))
            if not match:
                continue
            proposal = SuppressionProposal(
                case_id=case.id,
                rule_id=alert.rule_id,
                rule_name=alert.rule_name,
                match=match,
                status=PENDING,
                created_at=now_utc(),
            )
            session.add(proposal)
            existing.add((case.id, alert.rule_id))
            created.append(proposal)
        session.flush()
        for proposal in created:
            session.add(_audit(proposal, "suppression_proposal.created", "socflow-detect", None))
        session.flush()  # the audit rows too: expunging pending objects would drop them
        session.expunge_all()
    return created


def _audit(proposal: SuppressionProposal, action: str, actor: str, comment: str | None) -> AuditEvent:
    return AuditEvent(
        at=now_utc(),
        actor=actor,
        action=action,
        entity_type="suppression_proposal",
        entity_id=str(proposal.id),
        case_id=proposal.case_id,
        data={"rule_id": proposal.rule_id, "match": proposal.match, "comment": comment},
    )


def decide(
    factory: sessionmaker[Session], proposal_id: int, *, accept: bool, actor: str, comment: str | None = None
) -> SuppressionProposal:
    """Accept or decline a pending proposal; one audit event in the same transaction."""
    with factory() as session, session.begin():
        proposal = session.get(SuppressionProposal, proposal_id)
        if proposal is None:
            raise NotFoundError(f"no suppression proposal {proposal_id}")
        if proposal.status != PENDING:
            raise ConflictError(f"suppression proposal {proposal_id} is already {proposal.status}")
        proposal.status = ACCEPTED if accept else DECLINED
        proposal.decided_at = now_utc()
        proposal.decided_by = actor
        proposal.comment = comment
        action = "suppression_proposal.accepted" if accept else "suppression_proposal.declined"
        session.add(_audit(proposal, action, actor, comment))
        session.flush()
        session.expunge(proposal)
    return proposal


def list_proposals(factory: sessionmaker[Session], status: str | None = None) -> list[SuppressionProposal]:
    with factory() as session:
        query = select(SuppressionProposal).order_by(SuppressionProposal.id)
        if status:
            query = query.where(SuppressionProposal.status == status)
        rows = list(session.scalars(query).all())
        session.expunge_all()
    return rows


def as_suppression(proposal: SuppressionProposal) -> Suppression:
    return Suppression(
        id=f"proposal-{proposal.id}",
        rule=proposal.rule_id,
        reason=f"accepted by {proposal.decided_by} from case {proposal.case_id}"
        + (f": {proposal.comment}" if proposal.comment else ""),
        match={k: [str(v) for v in vs] for k, vs in proposal.match.items()},
    )


def accepted_suppressions(factory: sessionmaker[Session]) -> list[Suppression]:
    return [as_suppression(p) for p in list_proposals(factory, ACCEPTED)]
