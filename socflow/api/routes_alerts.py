"""``/api/v1/alerts``: push alerts in (one object, an array, or NDJSON) and read them back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socflow.api.contract import ErrorOut
from socflow.api.deps import RowId, Services, actor, allow, db, services
from socflow.api.models import AlertDetail, AlertOut, IngestResult, Page
from socflow.auth import Principal, Role
from socflow.errors import InputError
from socflow.ingest import ParsedItem, Sender, parse_ndjson, parse_payload
from socflow.normalize import make_normalizer
from socflow.store import CaseStore
from socflow.tables import Alert

router = APIRouter(prefix="/alerts", tags=["alerts"])

INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


def _too_large(what: str, limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{what} over the limit of {limit}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large("body size (bytes)", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large("body size (bytes)", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _items(body: bytes, content_type: str) -> list[ParsedItem]:
    """Items of a body; invalid UTF-8 bytes become U+FFFD, every item parses (or fails) on its own."""
    text = body.decode("utf-8", errors="replace")
    if "ndjson" in content_type or "jsonlines" in content_type:
        return list(parse_ndjson(text.splitlines()))
    return list(parse_payload(text))


def _normalizer(svc: Services, who: Principal, fmt: str | None) -> Any:
    """The per-request format (``?format=``), else the token's, else none (the service's default)."""
    chosen = fmt or who.ingest_format
    if not chosen:
        return None
    field_map = svc.settings.ingest.field_map or None
    try:
        return make_normalizer(fmt=chosen, field_map=field_map)
    except InputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.reason) from None


@router.post(
    "",
    response_model=IngestResult,
    openapi_extra=INGEST_BODY,
    responses={
        207: {"model": IngestResult},
        401: {"description": "no valid bearer token"},
        403: {"description": "the token's role may not ingest"},
        413: {"model": ErrorOut, "description": "over a limit"},
        422: {"model": IngestResult | ErrorOut, "description": "every item refused, or the request"},
    },
)
async def post_alerts(
    request: Request,
    response: Response,
    format: Annotated[
        str | None,
        Query(max_length=32, description="force this alert format (auto, generic, wazuh, elastic, ...)"),
    ] = None,
    who: Principal = allow(Role.ingest),
    svc: Services = Depends(services),
) -> IngestResult:
    """Ingest alerts. 200: all accepted or duplicate; 207: mixed; 422: all rejected (each item says why).

    Each item is checked on its own; refused items are kept as dead letters (``GET /dead-letters``). A
    token bound to sources (``sources``) may send only those; its ``ingest_format``, or ``?format=``,
    forces the alert format.
    """
    limits = svc.settings.ingest
    normalizer = _normalizer(svc, who, format)
    body = await _read_body(request, limits.max_body_bytes)
    items = _items(body, request.headers.get("content-type", ""))
    if len(items) > limits.max_batch_items:
        raise _too_large("batch size (items)", limits.max_batch_items)
    if not items:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no alerts in the body")
    from starlette.concurrency import run_in_threadpool

    sender = Sender(door="api", sources=who.sources)
    report = await run_in_threadpool(
        svc.ingest.ingest, items, actor=actor(who), sender=sender, normalizer=normalizer
    )
    if report.runs_queued:  # a broker send is network I/O: keep it off the event loop
        await run_in_threadpool(_submit_all, svc, report.runs_queued)
    if report.rejected == len(report.items):
        response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    elif report.rejected:
        response.status_code = status.HTTP_207_MULTI_STATUS
    return IngestResult(
        accepted=report.accepted,
        duplicates=report.duplicates,
        rejected=report.rejected,
        runs_queued=len(report.runs_queued),
        items=report.items,
    )


def _submit_all(svc: Services, run_ids: list[str]) -> None:
    for run_id in run_ids:
        svc.dispatcher.submit(run_id)


@router.get("", response_model=Page[AlertOut])
def list_alerts(
    case_id: Annotated[int | None, Query(ge=1)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    _: Principal = allow(Role.analyst, Role.engineer),
    session: Session = Depends(db),
) -> Page[AlertOut]:
    stmt = select(Alert)
    count = select(func.count(Alert.id))
    if case_id is not None:
        stmt, count = stmt.where(Alert.case_id == case_id), count.where(Alert.case_id == case_id)
    if source is not None:
        stmt, count = stmt.where(Alert.source == source), count.where(Alert.source == source)
    rows = session.scalars(stmt.order_by(Alert.id).limit(limit).offset(offset))
    return Page[AlertOut](
        total=int(session.scalar(count) or 0),
        limit=limit,
        offset=offset,
        items=[AlertOut.model_validate(r) for r in rows],
    )


@router.get("/{alert_id}", response_model=AlertDetail)
def get_alert(
    alert_id: RowId, _: Principal = allow(Role.analyst, Role.engineer), session: Session = Depends(db)
) -> AlertDetail:
    return AlertDetail.model_validate(CaseStore(session).get_alert(alert_id))
