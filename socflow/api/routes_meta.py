"""Workflows, runs, tokens, health."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from socflow.api.deps import RowId, RunId, Services, actor, allow, db, services
from socflow.api.models import Health, RunOut, TokenCreated, TokenIn, TokenOut, WorkflowOut
from socflow.auth import Principal, Role, hash_token, new_token
from socflow.errors import ConflictError, InputError, NotFoundError
from socflow.normalize import FORMATS
from socflow.schemas import now_utc
from socflow.store import CaseStore
from socflow.tables import ApiToken, WorkflowRun

router = APIRouter()


@router.get("/workflows", response_model=list[WorkflowOut], tags=["workflows"])
def list_workflows(
    _: Principal = allow(Role.analyst, Role.engineer), svc: Services = Depends(services)
) -> list[WorkflowOut]:
    reg = svc.registry
    return [
        WorkflowOut(
            name=s.name,
            version=s.version,
            description=s.description,
            queue=s.queue,
            origin=reg.origins[s.name],
        )
        for s in reg.specs()
    ]


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
def get_run(
    run_id: RunId, _: Principal = allow(Role.analyst, Role.engineer), session: Session = Depends(db)
) -> RunOut:
    run = session.get(WorkflowRun, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return RunOut.model_validate(run)


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
def create_token(body: TokenIn, who: Principal = allow(), svc: Services = Depends(services)) -> TokenCreated:
    """Create a token; the response carries it once, only its hash is stored."""
    if body.ingest_format is not None and body.ingest_format not in ("auto", *FORMATS):
        raise InputError(
            f"unknown format; expected auto or one of {', '.join(FORMATS)}", field="ingest_format"
        )
    raw = new_token()
    expires = now_utc() + timedelta(days=body.expires_days) if body.expires_days else None
    with svc.factory() as session, session.begin():
        row = CaseStore(session).create_token(
            name=body.name,
            role=body.role.value,
            token_hash=hash_token(raw),
            prefix=raw[:10],
            actor=actor(who),
            expires_at=expires,
            sources=body.sources,
            ingest_format=body.ingest_format,
        )
        return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=raw)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(_: Principal = allow(), session: Session = Depends(db)) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in CaseStore(session).list_tokens()]


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenOut,
    tags=["tokens"],
    responses={404: {"description": "no such token"}, 409: {"description": "the last admin token"}},
)
def revoke_token(token_id: RowId, who: Principal = allow(), svc: Services = Depends(services)) -> TokenOut:
    """Revoke a token (its web sessions end at once). The last valid admin token cannot be revoked here:
    that would lock every admin out of the API (``socflow token revoke`` on the server still can)."""
    with svc.factory() as session, session.begin():
        now = now_utc()
        admins = list(
            session.scalars(
                select(ApiToken.id)
                .where(
                    ApiToken.role == Role.admin.value,
                    ApiToken.revoked_at.is_(None),
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                )
                .with_for_update()
            )
        )
        if admins == [token_id]:
            raise ConflictError(f"token {token_id} is the last admin token; create another admin first")
        return TokenOut.model_validate(CaseStore(session).revoke_token(token_id, actor=actor(who)))


health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (public)."""
    return Health(status="ok")


@health.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(response: Response, svc: Services = Depends(services)) -> Health:
    """The database (and the broker, when one is configured) answer (public)."""
    checks: dict[str, str] = {}
    try:
        with svc.factory() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if svc.settings.broker.url:
        try:
            import redis

            redis.Redis.from_url(svc.settings.broker.url, socket_timeout=2).ping()
            checks["broker"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["broker"] = f"unavailable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", checks=checks)
