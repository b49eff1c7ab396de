"""The indicator store on both databases: upsert per (type, value, source), match, expiry, paging."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from socflow.db import make_engine, session_factory
from socflow.schemas import now_utc
from socflow.tables import AuditEvent
from tools.intel import store
from tools.intel.formats import ParseReport
from tools.intel.indicators import IndicatorType


def _report(*rows: dict) -> ParseReport:  # type: ignore[type-arg]
    report = ParseReport("csv")
    for row in rows:
        report.add(**row)
    return report


def test_load_match_update_and_expiry(db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    past = now_utc() - timedelta(days=1)
    first = _report(
        {"type": "ip", "value": "203.0.113.7", "source": "a", "confidence": 40},
        {"type": "ip", "value": "203.0.113.7", "source": "b", "confidence": 90},
        {"type": "domain", "value": "Old.Example", "source": "a", "valid_until": past},
    )
    with factory() as session, session.begin():
        assert store.load(session, first, actor="test") == store.LoadResult(added=3, updated=0)
    again = _report({"type": "ip", "value": "203.0.113.7", "source": "a", "confidence": 70})
    with factory() as session, session.begin():
        assert store.load(session, again, actor="test") == store.LoadResult(added=0, updated=1)
    with factory() as session:
        found = store.match(
            session, [(IndicatorType.ip, "203.0.113.7"), (IndicatorType.domain, "old.example")]
        )
        assert [(r.source, r.confidence) for r in found] == [("b", 90), ("a", 70)]  # expired one left out
        total, page = store.search(session, source="a", limit=1)
        assert total == 2 and len(page) == 1
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "intel.loaded")).all()
        assert [a.data["added"] for a in audit] == [3, 0]
