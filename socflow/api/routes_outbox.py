"""The outbox over the API: pending, failed and delivered deliveries (write-backs, and notifications with
targets ``notify.*``) with their last error, and a retry of failed ones (``socflow.outbox``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from socflow.api.deps import Services, allow, db, services
from socflow.auth import Principal, Role
from socflow.outbox import list_outbox, retry

router = APIRouter(tags=["outbox"])

StatusFilter = Literal["open", "pending", "delivered", "failed", "skipped"]


class OutboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    target: str
    case_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class OutboxRetry(BaseModel):
    ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(
        default_factory=list, max_length=1000
    )


class OutboxRetried(BaseModel):
    retried: int


@router.get("/outbox", response_model=list[OutboxOut])
def get_outbox(
    status: StatusFilter | None = None,
    case_id: int | None = Query(default=None, ge=1),
    limit: int = Query(default=100, ge=1, le=1000),
    _: Principal = allow(Role.analyst, Role.engineer),
    session: Session = Depends(db),
) -> list[OutboxOut]:
    """Write-back and notification deliveries, newest first; ``status=open`` lists pending and failed ones."""
    rows = list_outbox(session, status=status, case_id=case_id, limit=limit)
    return [OutboxOut.model_validate(r) for r in rows]


@router.post("/outbox/retry", response_model=OutboxRetried)
def retry_outbox(
    body: OutboxRetry, _: Principal = allow(Role.engineer), svc: Services = Depends(services)
) -> OutboxRetried:
    """Make failed or skipped deliveries (``ids``, or all of them) pending again, due now."""
    with svc.factory() as session, session.begin():
        return OutboxRetried(retried=retry(session, body.ids or None))
