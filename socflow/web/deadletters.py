"""``/dead-letters``: the ingest items a door refused, for analysts and engineers (a simple page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from socflow.api.deps import services
from socflow.auth import Role
from socflow.deadletters import list_dead_letters
from socflow.web.routes import need, render

router = APIRouter()
PAGE = 200


@router.get("/dead-letters", response_class=HTMLResponse, include_in_schema=False)
def dead_letters_page(request: Request, door: str | None = None) -> HTMLResponse:
    need(request, Role.analyst, Role.engineer)
    with services(request).factory() as session:
        total, rows = list_dead_letters(session, door=(door or None) and door[:32], limit=PAGE)
        session.expunge_all()
    return render(request, "dead_letters.html", rows=rows, total=total, door=door or "")
