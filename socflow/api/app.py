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
from socflow.api import routes_alerts, routes_cases, routes_meta, routes_metrics, routes_runs
from socflow.api.deps import Services
from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.decisions import DecisionNotAllowed
from socflow.dispatch import Dispatcher
from socflow.errors import ConflictError, InputError, NotFoundError, SocflowError
from socflow.ingest import IngestService
from socflow.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def _error(code: int, exc: SocflowError) -> JSONResponse:
    body: dict[str, object] = {"detail": str(exc), "code": exc.code}
    if isinstance(exc, InputError) and exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=code)


def create_app(settings: Settings | None = None, *, dispatcher: Dispatcher | None = None) -> FastAPI:
    """The API on ``settings`` (default: the process settings). ``dispatcher`` decides who advances runs:
    default Celery when ``SOCFLOW_BROKER__URL`` is set, else a background thread in this process."""
    settings = settings or get_settings()
    factory = session_factory(make_engine(settings.database.url))
    registry = wiring.build_registry(settings)

    def runner_factory():  # type: ignore[no-untyped-def]
        return wiring.build_runner(
            settings, deps=wiring.build_deps(settings, factory=factory), registry=registry
        )

    svc = Services(
        settings=settings,
        factory=factory,
        registry=registry,
        ingest=IngestService(factory, **wiring.ingest_options(settings, registry)),
        dispatcher=dispatcher or wiring.build_dispatcher(settings, runner_factory),
        runner_factory=runner_factory,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        shutdown = getattr(svc.dispatcher, "shutdown", None)
        if shutdown:
            shutdown()

    app = FastAPI(
        title="socflow",
        version=__version__,
        description="Local-model-first agentic SOC workflow orchestrator. Bearer tokens with roles: "
        "ingest, analyst, engineer, admin (`socflow token create`).",
        lifespan=lifespan,
    )
    app.state.services = svc

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
    for router in (routes_alerts.router, routes_cases.router, routes_meta.router, routes_runs.router):
        app.include_router(router, prefix=API_PREFIX)
        app.state.route_roles.update(route_roles(router, API_PREFIX))
    web_ui.mount_web(app)
    app.include_router(routes_runs.web)
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
