"""The outbox page ``/outbox``: write-back deliveries waiting, failed or delivered, with their last error
(read-only; ``socflow outbox retry`` or ``POST /api/v1/outbox/retry`` retries failed ones)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from socflow.api.deps import services
from socflow.outbox import list_outbox
from socflow.web.routes import READ_ROLES, need, render

router = APIRouter(include_in_schema=False)

STATUSES = ("open", "pending", "failed", "delivered", "skipped")


@router.get("/outbox", response_class=HTMLResponse)
def outbox(request: Request, status: str = "open") -> Response:
    need(request, *READ_ROLES)
    status = status if status in STATUSES else "open"
    with services(request).factory() as session:
        rows = list(list_outbox(session, status=status, limit=200))
        session.expunge_all()
    return render(request, "outbox.html", rows=rows, status=status, statuses=STATUSES)
