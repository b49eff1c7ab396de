"""``POST /api/v1/runs/{id}/retry`` and the case page's Retry button: a failed run resumes.

Both go through ``Runner.retry`` (compare-and-set failed -> queued; the case leaves ``needs_attention``)
and then the app's dispatcher, like a new run. 409 when the run has not failed.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from socflow.api.deps import RunId, Services, actor, allow, services
from socflow.api.models import RunOut
from socflow.auth import Principal, Role
from socflow.errors import ConflictError, NotFoundError
from socflow.web.routes import ACT_ROLES, error_page, need, see_other

router = APIRouter(prefix="/runs", tags=["runs"])
web = APIRouter(include_in_schema=False)


def retry_run(svc: Services, run_id: str, who: str) -> RunOut:
    svc.runner.retry(run_id, actor=who)
    svc.dispatcher.submit(run_id)
    return RunOut.model_validate(svc.runner.get(run_id))


@router.post("/{run_id}/retry", response_model=RunOut)
def retry(run_id: RunId, who: Principal = allow(Role.analyst), svc: Services = Depends(services)) -> RunOut:
    """Queue a failed run again; it continues from its last checkpoint (finished nodes are not re-run)."""
    return retry_run(svc, run_id, actor(who))


@web.post("/cases/{case_id}/runs/{run_id}/retry")
def retry_button(request: Request, case_id: int, run_id: str) -> Response:
    """The case page's Retry button (the session middleware has checked its ``csrf_token``)."""
    who = need(request, *ACT_ROLES)
    svc = services(request)
    try:
        if svc.runner.get(run_id).case_id != case_id:
            raise NotFoundError(f"run {run_id} is not a run of case {case_id}")
        retry_run(svc, run_id, f"web:{who.name}")
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    except ConflictError as exc:
        return error_page(request, 409, str(exc))
    return see_other(f"/cases/{case_id}#runs")
