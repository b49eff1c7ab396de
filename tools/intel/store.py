"""The local indicator store: table ``indicators`` in socflow's database (revision 0016).

``load`` upserts a parse report's indicators for one source (a value loaded again updates its row; nothing
is stored twice), ``match`` finds the indicators of given (type, value) pairs, ``search`` pages through
them. Each load is one audit event (``intel.loaded``) with its counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from socflow.schemas import now_utc
from socflow.tables import AuditEvent, Indicator
from tools.intel.formats import ParseReport
from tools.intel.indicators import IndicatorIn, IndicatorType

CHUNK = 500


@dataclass(frozen=True)
class LoadResult:
    added: int
    updated: int


def load(session: Session, report: ParseReport, *, actor: str) -> LoadResult:
    """Upsert ``report``'s indicators (unique per type, value and source); one audit event. The caller
    commits."""
    items = list(report.indicators.values())
    added = updated = 0
    now = now_utc()
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        keys = [(i.type.value, i.value, i.source) for i in chunk]
        existing = {
            (row.type, row.value, row.source): row
            for row in session.scalars(
                select(Indicator).where(tuple_(Indicator.type, Indicator.value, Indicator.source).in_(keys))
            )
        }
        for item in chunk:
            row = existing.get((item.type.value, item.value, item.source))
            if row is None:
                session.add(_row(item, now))
                added += 1
            else:
                _update(row, item, now)
                updated += 1
        session.flush()
    sources = sorted({i.source for i in items})[:20]
    session.add(
        AuditEvent(
            at=now,
            actor=actor[:200],
            action="intel.loaded",
            entity_type="indicators",
            entity_id=",".join(sources)[:100] or "-",
            data={
                "format": report.format,
                "added": added,
                "updated": updated,
                "skipped": report.skipped,
                "truncated": report.truncated,
            },
        )
    )
    return LoadResult(added=added, updated=updated)


def _row(item: IndicatorIn, now: datetime) -> Indicator:
    return Indicator(
        type=item.type.value,
        value=item.value,
        source=item.source,
        confidence=item.confidence,
        description=item.description,
        tags=item.tags,
        external_id=item.external_id,
        valid_until=item.valid_until,
        created_at=now,
        updated_at=now,
    )


def _update(row: Indicator, item: IndicatorIn, now: datetime) -> None:
    row.confidence = item.confidence
    row.description = item.description
    row.tags = item.tags
    row.external_id = item.external_id
    row.valid_until = item.valid_until
    row.updated_at = now


def match(session: Session, pairs: Iterable[tuple[IndicatorType | str, str]]) -> list[Indicator]:
    """The indicators of the given (type, normalized value) pairs, still valid now, highest confidence
    first."""
    keys = sorted({(str(IndicatorType(t)), v) for t, v in pairs})
    out: list[Indicator] = []
    now = now_utc()
    for start in range(0, len(keys), CHUNK):
        rows = session.scalars(
            select(Indicator)
            .where(tuple_(Indicator.type, Indicator.value).in_(keys[start : start + CHUNK]))
            .where((Indicator.valid_until.is_(None)) | (Indicator.valid_until > now))
        )
        out.extend(rows)
    return sorted(out, key=lambda r: (-(r.confidence or 0), r.type, r.value, r.source))


def search(
    session: Session,
    *,
    source: str | None = None,
    kind: IndicatorType | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, Sequence[Indicator]]:
    """(total, one page) of the stored indicators, newest first."""
    query = select(Indicator)
    count = select(func.count(Indicator.id))
    if source is not None:
        query, count = query.where(Indicator.source == source), count.where(Indicator.source == source)
    if kind is not None:
        query, count = query.where(Indicator.type == kind.value), count.where(Indicator.type == kind.value)
    rows = session.scalars(query.order_by(Indicator.id.desc()).limit(limit).offset(offset)).all()
    return int(session.scalar(count) or 0), rows
