"""Shared case work for graph nodes: a case's rows as a detached snapshot, and alerts as citable evidence.

Every workflow gives an alert the same stable evidence id, so two workflows on one case never store the
same alert twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.orm import Session, sessionmaker

from socflow.schemas import EvidenceRecord
from socflow.store import CaseStore
from socflow.tables import Alert, Case, Evidence


@dataclass(frozen=True)
class CaseSnapshot:
    case: Case
    alerts: list[Alert]
    evidence: list[Evidence]


def load_case(factory: sessionmaker[Session], case_id: int, *, max_alerts: int = 200) -> CaseSnapshot:
    """The case, its first ``max_alerts`` alerts and its evidence, detached from the session."""
    with factory() as session:
        store = CaseStore(session)
        snapshot = CaseSnapshot(
            case=store.get_case(case_id),
            alerts=store.list_alerts(case_id=case_id, limit=max_alerts),
            evidence=store.list_evidence(case_id),
        )
        session.expunge_all()
    return snapshot


def case_and_alerts(
    factory: sessionmaker[Session], memo: dict[Any, Any], case_id: int, *, max_alerts: int = 200
) -> tuple[Case, list[Alert]]:
    """The case and its first ``max_alerts`` alerts, detached, read once per graph drive (``memo`` is the run
    context's): read-only fields only (title, severity, the alerts); a node reads the case's current
    status in its own write transaction."""
    key = ("case_and_alerts", case_id, max_alerts)
    found = memo.get(key)
    if found is None:
        with factory() as session:
            store = CaseStore(session)
            found = (store.get_case(case_id), store.list_alerts(case_id=case_id, limit=max_alerts))
            session.expunge_all()
        memo[key] = found
    return cast(tuple[Case, list[Alert]], found)


def case_evidence(factory: sessionmaker[Session], case_id: int) -> list[Evidence]:
    """The case's evidence now, detached."""
    with factory() as session:
        evidence = CaseStore(session).list_evidence(case_id)
        session.expunge_all()
    return evidence


def alert_evidence(alert: Alert) -> EvidenceRecord:
    """An alert as citable evidence, with an id stable across workflows (sha256 of the alert id)."""
    digest = hashlib.sha256(f"alert\x1f{alert.id}".encode()).hexdigest()[:32]
    entities = {k: v for k, v in (alert.entities or {}).items() if v}
    summary = (
        f"alert {alert.title} (rule {alert.rule_name or alert.rule_id or '-'}, severity {alert.severity})"
    )
    if alert.description:
        summary += f": {alert.description[:400]}"
    return EvidenceRecord(
        evidence_id=digest,
        kind="alert",
        backend=None,
        source_event_id=str(alert.id),
        observed_at=alert.observed_at,
        summary=summary,
        data={"alert_id": alert.id, "entities": entities, "rule_tags": alert.rule_tags},
    )
