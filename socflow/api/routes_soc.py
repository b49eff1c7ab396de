"""``GET /api/v1/metrics/soc``: how the SOC is doing (the dashboard's figures, ``socflow.soc_metrics``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from socflow.api.deps import allow, db
from socflow.auth import Principal, Role
from socflow.soc_metrics import TimeRange, soc_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics/soc")
def get_soc_metrics(
    range_: Literal["24h", "7d", "30d", "90d"] | None = Query(None, alias="range"),
    since: datetime | None = Query(None, description="start of a custom range (ISO 8601)"),
    until: datetime | None = Query(None, description="end of a custom range (ISO 8601, default now)"),
    _: Principal = allow(Role.analyst, Role.engineer),
    session: Session = Depends(db),
) -> dict[str, Any]:
    """Times to acknowledge and to decide, cases by status/severity/verdict, auto-close rate, analyst
    agreement with the model, alert volume per rule and source, model latency and tokens per day."""
    return soc_metrics(session, TimeRange.parse(range_, since, until))
