"""The analyst's web UI: server-rendered pages on the API's FastAPI app (``mount_web``).

Pages: ``/login`` (password, API token, single sign-on at ``/login/oidc``), the queue ``/``,
a case ``/cases/{id}`` (edit, decision, history), ``/workflows``.
Decisions go through ``socflow.decisions.submit_decision`` (the path of the REST API and the CLI).
See docs/ui.md.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from socflow.api.deps import Services
from socflow.web import oidc, outbox_page
from socflow.web.deadletters import router as dead_letters_router
from socflow.web.routes import ACCOUNT_FAILURES, HERE, LoginRequired, WebForbidden, error_page, router
from socflow.web.security import LoginLimiter, WebSessionMiddleware

__all__ = ["mount_web"]


def mount_web(app: FastAPI) -> FastAPI:
    """Add the UI to an app made by ``socflow.api.create_app`` (idempotent)."""
    if getattr(app.state, "web_mounted", False):
        return app
    svc: Services = app.state.services
    app.add_middleware(
        WebSessionMiddleware,
        secret_key=svc.settings.api.secret_key.get_secret_value(),
        factory=svc.factory,
        secure_cookie=svc.settings.env == "production",
    )
    app.state.account_logins = LoginLimiter(limit=ACCOUNT_FAILURES)  # failed passwords per username
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="web-static")
    app.include_router(router)
    app.include_router(oidc.router)  # users: single sign-on (off unless SOCFLOW_OIDC__ENABLED)
    app.include_router(dead_letters_router)
    app.include_router(outbox_page.router)  # prod-a

    async def _login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    async def _forbidden(request: Request, exc: Exception) -> HTMLResponse:
        return error_page(request, 403, str(exc))

    app.add_exception_handler(LoginRequired, _login)
    app.add_exception_handler(WebForbidden, _forbidden)
    app.state.web_mounted = True
    return app
