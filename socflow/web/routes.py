"""The analyst's pages: login, the queue, a case, its history, the workflows (server-rendered, Jinja2)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.datastructures import URL

from socflow.api.deps import Services, services
from socflow.auth import Principal, Role, authenticate
from socflow.checkpoints import open_checkpointer
from socflow.decisions import DecisionNotAllowed
from socflow.enums import Severity, Verdict
from socflow.errors import ConflictError, InputError, NotFoundError, SocflowError
from socflow.export import FORMATS, export_case
from socflow.graph_svg import graph_shape, render_svg, run_path
from socflow.schemas import now_utc
from socflow.soc_metrics import RANGES, TimeRange, soc_metrics
from socflow.store import CaseStore, unified_diff
from socflow.tables import Alert, Case
from socflow.users import check_password
from socflow.web import actions, queries
from socflow.web import charts as charts_svg
from socflow.web.markdown import render_markdown
from socflow.web.security import LoginLimiter, anonymous_payload, login_payload

HERE = Path(__file__).resolve().parent
READ_ROLES = (Role.analyst, Role.engineer)
ACT_ROLES = (Role.analyst,)
MAX_PROMPT_CHARS = 20_000
POLL_SECONDS = 3
SSE_CHECK_SECONDS = 1.0  # how often the server looks for queue changes (one small query)
SSE_HEARTBEAT_SECONDS = 15.0
SSE_MAX_SECONDS = 300.0  # then the stream ends and the EventSource reconnects (the session is re-checked)
SSE_RETRY_MS = 1000

router = APIRouter(include_in_schema=False)
logger = logging.getLogger(__name__)


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class WebForbidden(Exception):
    pass


# -- templates -------------------------------------------------------------------------------------
def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _clip(value: str | None, limit: int = MAX_PROMPT_CHARS) -> str:
    if not value:
        return ""
    return value if len(value) <= limit else value[:limit] + f"\n… ({len(value) - limit} more characters)"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(md=render_markdown, pretty=_pretty, when=_when, clip=_clip, percent=_percent)
templates = Jinja2Templates(env=env)


def _who(request: Request) -> Principal | None:
    who = getattr(request.state, "session_principal", None)
    return who if isinstance(who, Principal) else None


def need(request: Request, *roles: Role) -> Principal:
    """The session's principal when it has one of ``roles``; else a login redirect or a 403 page."""
    who = _who(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if not who.has(*roles):
        raise WebForbidden(f"the {who.role.value} role may not do this in the analyst UI")
    return who


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    who = _who(request)
    base = {
        "who": who,
        "can_act": bool(who and who.has(*ACT_ROLES)),
        "csrf": getattr(request.state, "csrf_token", ""),
        "now": now_utc(),
        "age": queries.age,
        "path": request.url.path,
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def local_path(raw: str | None, default: str = "/") -> str:
    """A redirect target that stays on this site (a path, never ``//host`` or a scheme)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return default
    url = URL(raw)
    return raw if not url.scheme and not url.netloc else default


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, message=message)


# -- login -----------------------------------------------------------------------------------------
ACCOUNT_FAILURES = 5  # failed passwords per username per window (on top of the per-address limit)


def account_logins(request: Request) -> LoginLimiter:
    """The app's per-account failed-login counter (in this process)."""
    limiter = getattr(request.app.state, "account_logins", None)
    if not isinstance(limiter, LoginLimiter):
        limiter = request.app.state.account_logins = LoginLimiter(limit=ACCOUNT_FAILURES)
    return limiter


def _login_page(
    request: Request, next: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    oidc = services(request).settings.oidc
    return render(
        request,
        "login.html",
        status_code=status_code,
        next=local_path(next),
        error=error,
        sso_label=oidc.label if oidc.enabled else None,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    if _who(request) is not None:
        return see_other(local_path(next))
    return _login_page(request, next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/"),
) -> Response:
    """Sign in with an API token (kept for machines and for the first admin)."""
    svc: Services = services(request)
    with svc.factory() as session, session.begin():
        who = authenticate(session, token.strip())
    if who is None:
        return _login_page(request, next, "That token is not valid.", 401)
    request.state.web_session_set = login_payload(who)
    return see_other(local_path(next))


@router.post("/login/password", response_class=HTMLResponse)
def password_login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
) -> Response:
    """Sign in with a local account (``socflow user create``). Unknown users, wrong passwords and
    disabled accounts get the same answer after the same work (one argon2 verification)."""
    key = "user:" + username.strip().lower()[:200]
    if account_logins(request).blocked(key):
        return _login_page(request, next, "Too many failed sign-ins for this account; try again later.", 429)
    with services(request).factory() as session, session.begin():
        who = check_password(session, username.strip(), password)
    if who is None:
        account_logins(request).failed(key)
        return _login_page(request, next, "Unknown user or wrong password.", 401)
    request.state.web_session_set = login_payload(who)
    return see_other(local_path(next))


@router.post("/logout")
def logout(request: Request) -> Response:
    request.state.web_session_set = anonymous_payload()
    return see_other("/login")


# -- the queue -------------------------------------------------------------------------------------
def _queue_context(request: Request, who: Principal) -> dict[str, Any]:
    filters = queries.QueueFilters.parse(request.query_params)
    with services(request).factory() as session:
        rows, total = queries.queue(session, filters, me=who.name)
        session.expunge_all()
    return {
        "rows": rows,
        "total": total,
        "filters": filters,
        "status_choices": queries.STATUS_FILTERS,
        "severities": [s.value for s in Severity],
        "verdicts": [v.value for v in Verdict],
        "poll_seconds": POLL_SECONDS,
    }


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request) -> Response:
    who = need(request, *READ_ROLES)
    return render(request, "queue.html", **_queue_context(request, who))


@router.get("/queue/rows", response_class=HTMLResponse)
def queue_rows(request: Request) -> Response:
    """The queue's table body alone: the queue page polls it, so new cases appear without a reload."""
    who = need(request, *READ_ROLES)
    return render(request, "_queue_rows.html", **_queue_context(request, who))


def _queue_fingerprint(request: Request) -> tuple[Any, ...]:
    with services(request).factory() as session:
        cases = session.execute(select(func.count(Case.id), func.max(Case.updated_at))).one()
        return (*cases, session.scalar(select(func.max(Alert.id))))


def _queue_rows_html(request: Request, who: Principal) -> str:
    context = {
        "who": who,
        "can_act": who.has(*ACT_ROLES),
        "csrf": getattr(request.state, "csrf_token", ""),
        "now": now_utc(),
        "age": queries.age,
        "path": "/",
        **_queue_context(request, who),
    }
    return env.get_template("_queue_rows.html").render(context)


def sse_event(event: str, data: str) -> str:
    """One Server-Sent Event: every line of ``data`` on its own ``data:`` line."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


async def queue_event_stream(
    request: Request, who: Principal, *, check_seconds: float, max_seconds: float
) -> AsyncIterator[str]:
    """The queue's rows now, then again whenever a case or an alert changes (checked on the server).

    Ends after ``max_seconds`` (the browser's EventSource reconnects, and the session is checked again).
    """
    yield f"retry: {SSE_RETRY_MS}\n\n"
    last: tuple[Any, ...] | None = None
    started = anyio.current_time()
    quiet = 0.0
    while anyio.current_time() - started < max_seconds:
        if await request.is_disconnected():
            return
        fingerprint = await anyio.to_thread.run_sync(_queue_fingerprint, request)
        if fingerprint != last:
            last = fingerprint
            html = await anyio.to_thread.run_sync(_queue_rows_html, request, who)
            yield sse_event("rows", html)
            quiet = 0.0
        elif quiet >= SSE_HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            quiet = 0.0
        await anyio.sleep(check_seconds)
        quiet += check_seconds


@router.get("/queue/events")
async def queue_events(request: Request) -> Response:
    """The live queue (Server-Sent Events): the queue page's EventSource; no polling in the browser."""
    who = need(request, *READ_ROLES)
    state = request.app.state
    stream = queue_event_stream(
        request,
        who,
        check_seconds=getattr(state, "sse_check_seconds", SSE_CHECK_SECONDS),
        max_seconds=getattr(state, "sse_max_seconds", SSE_MAX_SECONDS),
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/cases/{case_id}/assign")
def assign(request: Request, case_id: int, next: str = Form("")) -> Response:
    who = need(request, *ACT_ROLES)
    try:
        actions.assign_to_me(services(request), case_id, who)
    except NotFoundError as exc:
        return error_page(request, 404, str(exc))
    _acknowledge(request, case_id, who, "assigned")
    return see_other(local_path(next, f"/cases/{case_id}"))


# -- a case ----------------------------------------------------------------------------------------
def _case_response(
    request: Request,
    case_id: int,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: actions.DecisionForm | None = None,
) -> Response:
    with services(request).factory() as session:
        try:
            page = queries.case_page(session, case_id)
        except NotFoundError as exc:
            return error_page(request, 404, str(exc))
    decided = request.query_params.get("decided")
    decided_run = next((r for r in page.runs if r.id == decided), None) if decided else None
    return render(
        request,
        "case.html",
        status_code=status_code,
        page=page,
        case=page.detail,
        error=error,
        form=form or actions.DecisionForm(action=""),
        decided_run=decided_run,
        verdicts=[v.value for v in Verdict],
        poll_seconds=POLL_SECONDS,
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_view(request: Request, case_id: int) -> Response:
    who = need(request, *READ_ROLES)
    if who.has(*ACT_ROLES):  # an analyst opening the case acknowledges it (once; engineers only read)
        _acknowledge(request, case_id, who, "opened")
    return _case_response(request, case_id)


def _acknowledge(request: Request, case_id: int, who: Principal, via: str) -> None:
    with (
        services(request).factory() as session,
        session.begin(),
        contextlib.suppress(NotFoundError),  # the page answers 404
    ):
        CaseStore(session).acknowledge_case(case_id, actor=who.name, via=via)


@router.get("/cases/{case_id}/state")
def case_state(request: Request, case_id: int) -> JSONResponse:
    """Run and case status, polled by the case page while a run is moving."""
    need(request, *READ_ROLES)
    with services(request).factory() as session:
        return JSONResponse(queries.run_states(session, case_id))


def _status_of(exc: SocflowError) -> int:
    if isinstance(exc, DecisionNotAllowed | ConflictError | NotFoundError):
        return 409
    if isinstance(exc, InputError):
        return 422
    return 500


@router.post("/cases/{case_id}/decision", response_class=HTMLResponse)
async def decision(request: Request, case_id: int) -> Response:
    """Approve, edit, reject or escalate the drafted note, with optional verdict/technique overrides."""
    who = need(request, *ACT_ROLES)
    form = actions.DecisionForm.from_form(await request.form())
    return await _run_sync(request, case_id, form, who)


async def _run_sync(request: Request, case_id: int, form: actions.DecisionForm, who: Principal) -> Response:
    def work() -> Response:
        svc = services(request)
        with svc.factory() as session:
            try:
                CaseStore(session).get_case(case_id)
            except NotFoundError as exc:
                return error_page(request, 404, str(exc))
        try:
            result = actions.decide(svc, case_id, form, who)
        except SocflowError as exc:
            if form.action == "edit":  # back to the editor with the analyst's text: nothing typed is lost
                return _editor(request, case_id, form, status_code=_status_of(exc), error=str(exc))
            return _case_response(request, case_id, status_code=_status_of(exc), error=str(exc), form=form)
        return see_other(f"/cases/{case_id}?decided={result.run_id}#outcome")

    return await anyio.to_thread.run_sync(work)


def _draft_body(request: Request, case_id: int) -> tuple[queries.CasePage | None, Response | None]:
    with services(request).factory() as session:
        try:
            return queries.case_page(session, case_id), None
        except NotFoundError as exc:
            return None, error_page(request, 404, str(exc))


@router.api_route("/cases/{case_id}/edit", methods=["GET", "POST"], response_class=HTMLResponse)
async def edit(request: Request, case_id: int) -> Response:
    """The note editor, prefilled with the current draft (or with the text being edited)."""
    need(request, *ACT_ROLES)
    form = actions.DecisionForm(action="edit")
    if request.method == "POST":
        form = actions.DecisionForm.from_form(await request.form())
    return _editor(request, case_id, form)


def _editor(
    request: Request,
    case_id: int,
    form: actions.DecisionForm,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    page, failed = _draft_body(request, case_id)
    if page is None:
        assert failed is not None
        return failed
    body = form.body if form.body is not None else (page.draft.body if page.draft else "")
    return render(
        request,
        "edit.html",
        status_code=status_code,
        page=page,
        case=page.detail,
        body=body,
        form=form,
        error=error,
        verdicts=[v.value for v in Verdict],
    )


@router.post("/cases/{case_id}/edit/preview", response_class=HTMLResponse)
async def edit_preview(request: Request, case_id: int) -> Response:
    """The diff between the draft and the edited note, shown before anything is saved."""
    need(request, *ACT_ROLES)
    page, failed = _draft_body(request, case_id)
    if page is None:
        assert failed is not None
        return failed
    form = actions.DecisionForm.from_form(await request.form())
    before = page.draft.body if page.draft else ""
    after = form.body or ""
    diff = unified_diff(before, after)
    return render(
        request,
        "edit_preview.html",
        page=page,
        case=page.detail,
        form=form,
        body=after,
        diff_lines=diff.splitlines(),
        changed=before != after,
    )


@router.get("/cases/{case_id}/export")
def export_download(request: Request, case_id: int, format: str = "json") -> Response:
    """The case as a download (JSON, Markdown or a STIX 2.1 bundle): the API's export, for the session."""
    need(request, *ACT_ROLES)
    if format not in FORMATS:
        return error_page(request, 400, f"format must be one of {', '.join(FORMATS)}")
    with services(request).factory() as session:
        try:
            result = export_case(session, case_id, format)
        except NotFoundError as exc:
            return error_page(request, 404, str(exc))
    disposition = f'attachment; filename="{result.filename}"'
    return Response(
        result.content, media_type=result.media_type, headers={"Content-Disposition": disposition}
    )


@router.get("/cases/{case_id}/history", response_class=HTMLResponse)
def history(request: Request, case_id: int) -> Response:
    need(request, *READ_ROLES)
    with services(request).factory() as session:
        try:
            page = queries.case_page(session, case_id)
        except NotFoundError as exc:
            return error_page(request, 404, str(exc))
        calls = queries.model_calls(session, case_id)
        session.expunge_all()
    paths = run_graphs(services(request), page.runs[:HISTORY_GRAPHS])
    return render(request, "history.html", page=page, case=page.detail, calls=calls, run_graphs=paths)


HISTORY_GRAPHS = 5


def run_graphs(svc: Services, runs: list[Any]) -> list[dict[str, Any]]:
    """Each run's workflow graph with the nodes the run executed highlighted (read from its checkpoints)."""
    out: list[dict[str, Any]] = []
    if not runs:
        return out
    try:
        with open_checkpointer(svc.settings.database.url) as saver:
            for run in runs:
                try:
                    spec = svc.registry.get(run.workflow)
                except NotFoundError:
                    continue
                path = run_path(saver, run.id)
                if run.status == "completed":
                    path.append("__end__")
                out.append(
                    {
                        "run": run,
                        "path": path,
                        "svg": Markup(
                            render_svg(_shape(spec), taken=path, title=f"{run.workflow}: run {run.id}")
                        ),
                    }
                )
    except Exception as exc:  # a history page still shows without its graphs
        logger.warning("run graphs unavailable: %s", type(exc).__name__)
    return out


# -- the SOC dashboard -----------------------------------------------------------------------------
def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} s"


env.filters.update(duration=_duration)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    """Times to acknowledge and decide, case counts, auto-close rate, agreement, alert and model volume."""
    need(request, *READ_ROLES)
    params = request.query_params
    try:
        tr = TimeRange.parse(
            params.get("range") or None,
            _parse_when(params.get("since")),
            _parse_when(params.get("until")),
        )
    except InputError as exc:
        return error_page(request, 422, str(exc))
    with services(request).factory() as session:
        figures = soc_metrics(session, tr)
    cases = figures["cases"]
    alerts = figures["alerts"]
    model = figures["model"]
    days = [d["day"] for d in model["per_day"]]
    charts = {
        "status": Markup(charts_svg.bar_chart(cases["by_status"], title="cases by status")),
        "severity": Markup(charts_svg.bar_chart(cases["by_severity"], title="cases by severity")),
        "verdict": Markup(charts_svg.bar_chart(cases["by_verdict"], title="cases by verdict")),
        "rules": Markup(
            charts_svg.column_chart(
                alerts["by_rule"]["buckets"], alerts["by_rule"]["series"], title="alerts per rule"
            )
        ),
        "sources": Markup(
            charts_svg.column_chart(
                alerts["by_source"]["buckets"], alerts["by_source"]["series"], title="alerts per source"
            )
        ),
        "tokens": Markup(
            charts_svg.column_chart(
                days,
                [
                    {
                        "key": "prompt tokens",
                        "total": sum(d["prompt_tokens"] for d in model["per_day"]),
                        "counts": [d["prompt_tokens"] for d in model["per_day"]],
                    },
                    {
                        "key": "completion tokens",
                        "total": sum(d["completion_tokens"] for d in model["per_day"]),
                        "counts": [d["completion_tokens"] for d in model["per_day"]],
                    },
                ],
                title="model tokens per day",
            )
        ),
        "latency": Markup(
            charts_svg.bar_chart(
                [(d["day"], round(d["mean_latency_ms"], 1)) for d in model["per_day"] if d["calls"]],
                title="mean model latency per day",
                unit=" ms",
            )
        ),
    }
    return render(
        request,
        "dashboard.html",
        f=figures,
        charts=charts,
        ranges=list(RANGES),
        range_label=tr.label,
        since=params.get("since", ""),
        until=params.get("until", ""),
    )


def _parse_when(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw[:40])
    except ValueError:
        raise InputError("since/until must be ISO 8601 dates or times", field="since") from None


# -- workflows -------------------------------------------------------------------------------------
_MERMAID: dict[tuple[str, str], str] = {}
_SHAPES: dict[tuple[str, str], dict[str, Any]] = {}


def _shape(spec: Any) -> dict[str, Any]:
    key = (spec.name, spec.version)
    if key not in _SHAPES:
        _SHAPES[key] = graph_shape(spec)
    return _SHAPES[key]


def _graph_svg(spec: Any) -> Markup | None:
    try:
        return Markup(render_svg(_shape(spec), title=f"{spec.name} {spec.version}"))
    except Exception:  # a plugin whose graph cannot be drawn still gets listed
        return None


def _mermaid(spec: Any) -> str:
    key = (spec.name, spec.version)
    if key not in _MERMAID:
        try:
            _MERMAID[key] = spec.mermaid()
        except Exception as exc:  # a plugin whose graph cannot be drawn still gets listed
            _MERMAID[key] = f"(the graph could not be drawn: {type(exc).__name__})"
    return _MERMAID[key]


@router.get("/workflows", response_class=HTMLResponse)
def workflows(request: Request) -> Response:
    need(request, *READ_ROLES)
    svc = services(request)
    items = []
    with svc.factory() as session:
        for spec in svc.registry.specs():
            items.append(
                {
                    "spec": spec,
                    "origin": svc.registry.origins.get(spec.name, ""),
                    "mermaid": _mermaid(spec),
                    "svg": _graph_svg(spec),
                    "runs": queries.recent_runs(session, spec.name),
                }
            )
        session.expunge_all()
    return render(request, "workflows.html", items=items, skipped=svc.registry.skipped)
