"""Dead letters: what a door refused, kept so an operator sees what a sender got wrong.

Every refused ingest item (bad JSON, an unusable number, nesting too deep, a field the schema refuses, a
source the token may not send) becomes one ``dead_letters`` row: the door, the actor, the claimed source,
the item's position, the reason and the payload cut to ``MAX_PAYLOAD_CHARS``. The table is bounded:
``prune`` (run by ``socflow db prune``) drops rows older than a cut-off and keeps at most ``MAX_ROWS``.
Rows are written in the ingest transaction, so a refused item and its dead letter commit together.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.schemas import now_utc
from socflow.tables import DeadLetter
from socflow.untrusted import Unusable, clean_string

MAX_PAYLOAD_CHARS = 4096
MAX_REASON_CHARS = 1000
MAX_ROWS = 100_000
DEFAULT_MAX_AGE = timedelta(days=30)


def _default(value: Any) -> Any:
    if isinstance(value, Unusable):
        return f"<{value.reason}>"
    return repr(value)[:200]


def payload_text(payload: Any) -> str:
    """The payload as JSON text (or as given, when it could not be parsed), cut to the bound."""
    if isinstance(payload, str):
        text = payload
    else:
        try:
            text = json.dumps(payload, default=_default, ensure_ascii=False, separators=(",", ":"))
        except (ValueError, RecursionError):
            text = repr(type(payload))
    text = clean_string(text)
    if len(text) > MAX_PAYLOAD_CHARS:
        text = text[: MAX_PAYLOAD_CHARS - 12] + " [truncated]"
    return text


def record(
    session: Session,
    *,
    door: str,
    actor: str,
    source: str | None,
    index: int | None,
    line: int | None,
    reason: str,
    field: str | None,
    payload: Any,
    clock: Callable[[], datetime] = now_utc,
) -> DeadLetter:
    row = DeadLetter(
        at=clock(),
        door=clean_string(door)[:32],
        actor=clean_string(actor)[:200],
        source=clean_string(source)[:200] if source else None,
        item_index=index,
        line=line,
        reason=clean_string(reason)[:MAX_REASON_CHARS],
        field=clean_string(field)[:200] if field else None,
        payload=payload_text(payload),
    )
    session.add(row)
    return row


def list_dead_letters(
    session: Session,
    *,
    door: str | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[DeadLetter]]:
    """(total, newest first) dead letters, optionally of one door or source."""
    stmt = select(DeadLetter)
    count = select(func.count(DeadLetter.id))
    if door is not None:
        stmt, count = stmt.where(DeadLetter.door == door), count.where(DeadLetter.door == door)
    if source is not None:
        stmt, count = stmt.where(DeadLetter.source == source), count.where(DeadLetter.source == source)
    rows = list(session.scalars(stmt.order_by(DeadLetter.id.desc()).limit(limit).offset(offset)))
    return int(session.scalar(count) or 0), rows


def prune(
    factory: sessionmaker[Session],
    *,
    older_than: timedelta = DEFAULT_MAX_AGE,
    max_rows: int = MAX_ROWS,
    clock: Callable[[], datetime] = now_utc,
) -> int:
    """Drop dead letters older than ``older_than`` and all but the newest ``max_rows``; the count dropped."""
    with factory() as session, session.begin():
        before = int(session.scalar(select(func.count(DeadLetter.id))) or 0)
        session.execute(delete(DeadLetter).where(DeadLetter.at < clock() - older_than))
        cutoff = session.scalar(
            select(DeadLetter.id).order_by(DeadLetter.id.desc()).offset(max_rows).limit(1)
        )
        if cutoff is not None:
            session.execute(delete(DeadLetter).where(DeadLetter.id <= cutoff))
        after = int(session.scalar(select(func.count(DeadLetter.id))) or 0)
    return before - after
