"""``/api/v1/dead-letters``: the ingest items a door refused, newest first, with the reason."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from socflow.api.deps import allow, db
from socflow.auth import Principal, Role
from socflow.deadletters import list_dead_letters

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    door: str
    actor: str
    source: str | None
    item_index: int | None
    line: int | None
    reason: str
    field: str | None
    payload: str


class DeadLetterPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeadLetterOut]


@router.get(
    "",
    response_model=DeadLetterPage,
    responses={401: {"description": "no valid bearer token"}, 403: {"description": "role not allowed"}},
)
def get_dead_letters(
    door: Annotated[str | None, Query(max_length=32)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    _: Principal = allow(Role.analyst, Role.engineer),
    session: Session = Depends(db),
) -> DeadLetterPage:
    """What senders got wrong: door, claimed source, position, reason and the payload (cut short)."""
    total, rows = list_dead_letters(session, door=door, source=source, limit=limit, offset=offset)
    return DeadLetterPage(
        total=total, limit=limit, offset=offset, items=[DeadLetterOut.model_validate(r) for r in rows]
    )
