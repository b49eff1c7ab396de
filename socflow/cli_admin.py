"""``socflow serve``, ``socflow token ...`` and ``socflow runs ...``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow import wiring
from socflow.auth import Role, hash_token, new_token
from socflow.cli_output import console, emit_json, err, json_option, row_json
from socflow.db import make_engine, session_factory
from socflow.errors import ConflictError, NotFoundError
from socflow.logs import configure_logging
from socflow.normalize import FORMATS
from socflow.runner import RunStatus
from socflow.schemas import now_utc
from socflow.settings import get_settings
from socflow.store import CaseStore
from socflow.tables import WorkflowRun

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
runs_app = typer.Typer(help="Workflow runs.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default SOCFLOW_API__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SOCFLOW_API__PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Uvicorn worker processes.")] = 1,
    app_ref: Annotated[
        str, typer.Option("--app", hidden=True, help="module:function making the app (another composition).")
    ] = "socflow.api:create_app",
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the analyst web UI.

    Each server process builds its one composition (``socflow.services``). Without a broker, runs advance
    on a background thread of the process, and the periodic jobs (the sweeper first) run on another: runs
    a crash left queued or leased are advanced again after a restart, with no command.
    """
    import uvicorn

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        app_ref,
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        proxy_headers=True,
        log_config=None,  # socflow's handler (SOCFLOW_LOG__FORMAT, redaction) formats uvicorn's records
        access_log=False,  # one "request" line per request comes from RequestLogMiddleware, with its id
    )


def _factory() -> sessionmaker[Session]:
    return session_factory(make_engine(get_settings().database.url))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="The person or system using the token.")],
    role: Annotated[Role, typer.Option("--role", help="ingest, analyst, engineer or admin.")],
    expires: Annotated[
        int | None, typer.Option("--expires", min=1, max=3650, help="Days until it expires.")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="An alert source this token may send (repeat; default: any)."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Force this alert format for what the token sends.")
    ] = None,
) -> None:
    """Create a token and print it once (only its hash is stored).

    Only alerts sent by a token bound to their source (``--source``) can ever be auto-closed."""
    if fmt is not None and fmt not in ("auto", *FORMATS):
        raise typer.BadParameter(f"expected auto or one of {', '.join(FORMATS)}", param_hint="--format")
    raw = new_token()
    with _factory()() as session, session.begin():
        row = CaseStore(session).create_token(
            name=name,
            role=role.value,
            token_hash=hash_token(raw),
            prefix=raw[:10],
            actor="cli",
            expires_at=now_utc() + timedelta(days=expires) if expires else None,
            sources=source or None,
            ingest_format=fmt,
        )
        token_id = row.id
    err.print(f"token {token_id} for {name} ({role.value}); shown once, store it now:", markup=False)
    console.print(raw, markup=False, highlight=False)


@token_app.command("list")
def token_list(as_json: json_option = False) -> None:
    """List tokens (never the tokens themselves)."""
    if as_json:
        with _factory()() as session:
            emit_json([row_json(t, exclude=("token_hash",)) for t in CaseStore(session).list_tokens()])
        return
    table = Table(
        "id", "name", "role", "prefix", "created", "expires", "revoked", "last used", title="tokens"
    )
    with _factory()() as session:
        for t in CaseStore(session).list_tokens():

            def fmt(d: datetime | None) -> str:
                return d.strftime("%Y-%m-%d %H:%M") if d else "-"

            table.add_row(
                str(t.id),
                t.name,
                t.role,
                t.prefix,
                fmt(t.created_at),
                fmt(t.expires_at),
                fmt(t.revoked_at),
                fmt(t.last_used_at),
            )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token at once."""
    try:
        with _factory()() as session, session.begin():
            CaseStore(session).revoke_token(token_id, actor="cli")
    except NotFoundError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from exc
    console.print(f"token {token_id} revoked")


@runs_app.command("list")
def runs_list(
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: json_option = False,
) -> None:
    """Recent workflow runs."""
    table = Table("run", "workflow", "case", "status", "attempts", "updated", "error", title="runs")
    with _factory()() as session:
        stmt = select(WorkflowRun).order_by(WorkflowRun.updated_at.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(WorkflowRun.status == status.value)
        if as_json:
            emit_json([row_json(r, exclude=("input", "pending_interrupt")) for r in session.scalars(stmt)])
            return
        for r in session.scalars(stmt):
            table.add_row(
                r.id,
                r.workflow,
                str(r.case_id or "-"),
                r.status,
                str(r.attempts),
                r.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.error_kind or "",
            )
    console.print(table)


@runs_app.command("process")
def runs_process(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many runs.")] = 100,
) -> None:
    """Advance queued runs (and runs whose lease expired) in this process, then exit."""
    settings = get_settings()
    runner = wiring.build_services(settings, dispatcher="inline").runner
    ids = runner.runnable(limit=limit)
    counts: dict[str, int] = {}
    for run_id in ids:
        result = runner.advance(run_id)
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
    console.print(
        f"{len(ids)} runs advanced: " + (", ".join(f"{v} {k}" for k, v in counts.items()) or "none")
    )


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Advance it here and now (default without a broker); --no-wait leaves it to the workers.",
        ),
    ] = True,
) -> None:
    """Resume a failed run from its last checkpoint (its case leaves needs_attention)."""
    settings = get_settings()
    queue_it = bool(settings.broker.url) and not wait
    services = wiring.build_services(settings, dispatcher=None if queue_it else "inline")
    runner = services.runner
    try:
        runner.retry(run_id, actor="cli")
    except (NotFoundError, ConflictError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from exc
    if queue_it:
        services.dispatcher.submit(run_id)
        console.print(f"run {run_id} queued again", markup=False)
        return
    result = runner.advance(run_id) if wait else None
    status = result.status.value if result else "queued"
    console.print(f"run {run_id} {status}", markup=False, highlight=False)
    if result is not None and result.status is RunStatus.failed:
        err.print(f"error: {runner.get(run_id).error}", markup=False)
        raise typer.Exit(1)
