"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from socflow import __version__, wiring
from socflow import web as web_ui
from socflow.api import (
    routes_alerts,
    routes_cases,
    routes_deadletters,
    routes_meta,
    routes_metrics,
    routes_outbox,
    routes_runs,
    routes_soc,
)
from socflow.api.contract import ERROR_RESPONSES
from socflow.auth import Role
from socflow.decisions import DecisionNotAllowed
from socflow.dispatch import Dispatcher
from socflow.errors import ConflictError, InputError, NotFoundError, SocflowError
from socflow.jobs import Scheduler
from socflow.logs import install_request_logging
from socflow.services import Services
from socflow.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def _error(code: int, exc: SocflowError) -> JSONResponse:
    body: dict[str, object] = {"detail": str(exc), "code": exc.code}
    if isinstance(exc, InputError) and exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=code)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    """The API over ``services``, the process's one composition (default: built here from ``settings``, the
    process settings by default, with ``dispatcher`` when given: Celery when ``SOCFLOW_BROKER__URL`` is set,
    else a background thread of this process with the process's one runner and model).

    Without a broker the periodic jobs (the sweeper first) run on a thread of this process while it serves:
    runs left queued or leased by a crash, or committed by a request that then failed, are advanced again
    without any command. The app closes the services it built when it shuts down.
    """
    owned = services is None
    if services is None:
        services = wiring.build_services(settings or get_settings(), dispatcher=dispatcher)
    svc = services
    scheduler = None if svc.settings.broker.url else Scheduler(svc.jobs, svc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if owned:
                svc.close()

    app = FastAPI(
        title="socflow",
        version=__version__,
        description="Local-model-first agentic SOC workflow orchestrator. Bearer tokens with roles: "
        "ingest, analyst, engineer, admin (`socflow token create`).",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.scheduler = scheduler

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(status.HTTP_404_NOT_FOUND, exc)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, exc)

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        code = status.HTTP_409_CONFLICT if isinstance(exc, DecisionNotAllowed) else 422
        return _error(code, exc)

    app.include_router(routes_meta.health)
    app.include_router(routes_metrics.router)
    app.state.route_roles = {}
    routers = (
        routes_alerts,
        routes_cases,
        routes_meta,
        routes_deadletters,
        routes_soc,
        routes_outbox,
        routes_runs,
    )
    for router in (r.router for r in routers):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
        app.state.route_roles.update(route_roles(router, API_PREFIX))
    web_ui.mount_web(app)
    app.include_router(routes_runs.web)
    install_request_logging(app, svc.settings)  # outermost: request ids and one log line per request
    return app


def _roles_of(dependant: Any) -> frozenset[Role] | None:
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return frozenset(roles)
        found = _roles_of(dep)
        if found is not None:
            return found
    return None


def route_roles(router: APIRouter, prefix: str) -> dict[tuple[str, str], frozenset[Role]]:
    """(method, path) -> the roles ``allow`` admits, for every route of ``router`` (drives the role tests)."""
    out: dict[tuple[str, str], frozenset[Role]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            roles = _roles_of(route.dependant)
            for method in route.methods or ():
                if roles is not None:
                    out[(method, prefix + route.path)] = roles
    return out
