"""``socflow outbox``: the deliveries (``socflow.outbox``: write-backs and notifications): list them with
their last error, retry failed ones, deliver due ones now (once, or as a loop), add due notifications."""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from socflow.db import make_engine, session_factory
from socflow.errors import SocflowError
from socflow.notify import notify_pass
from socflow.outbox import deliver_outbox, list_outbox, retry
from socflow.settings import Settings, get_settings

app = typer.Typer(
    help="Deliveries (write-backs, notifications): list, retry, deliver, notify.", no_args_is_help=True
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except SocflowError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc


@app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, failed, skipped, or open (pending + failed)")
    ] = None,
    case: Annotated[int | None, typer.Option(help="Only this case's deliveries.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list instead of a table.")] = False,
) -> None:
    """Deliveries, newest first, with their last error."""
    settings = _settings()
    factory = session_factory(make_engine(settings.database.url))
    with factory() as session:
        rows = list_outbox(session, status=status, case_id=case, limit=limit)
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "target": r.target,
                            "case_id": r.case_id,
                            "status": r.status,
                            "attempts": r.attempts,
                            "next_attempt_at": r.next_attempt_at.isoformat(),
                            "last_error": r.last_error,
                        }
                        for r in rows
                    ]
                )
            )
            return
        table = Table("id", "target", "case", "status", "tries", "next try", "last error")
        for r in rows:
            table.add_row(
                r.id[:8],
                r.target,
                str(r.case_id or ""),
                r.status,
                str(r.attempts),
                f"{r.next_attempt_at:%Y-%m-%d %H:%M:%S}" if r.status == "pending" else "",
                (r.last_error or "")[:120],
            )
    console.print(table)


@app.command("retry")
def retry_command(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids (default: every failed one).")] = None,
) -> None:
    """Make failed or skipped deliveries pending again, due now."""
    settings = _settings()
    factory = session_factory(make_engine(settings.database.url))
    with factory() as session, session.begin():
        n = retry(session, ids or None)
    console.print(f"{n} deliveries pending again", highlight=False)


@app.command("deliver")
def deliver_command(
    loop: Annotated[bool, typer.Option("--loop", help="Keep delivering every --interval seconds.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes.")] = 15.0,
) -> None:
    """Deliver the due write-backs and notifications now (one pass, or a loop until Ctrl-C)."""
    settings = _settings()
    stop = threading.Event()
    while True:
        report = deliver_outbox(settings)
        console.print(" ".join(f"{k}={v}" for k, v in report.counts().items()), highlight=False)
        if not loop:
            return
        try:
            stop.wait(interval)
        except KeyboardInterrupt:
            return


@app.command("notify")
def notify_command(
    loop: Annotated[bool, typer.Option("--loop", help="Keep checking every --interval seconds.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes.")] = 30.0,
) -> None:
    """Add the due notifications (escalations, assignments, critical cases, SLA breaches) to the outbox:
    what the periodic ``notify`` job does (docs/notifications.md). ``deliver`` sends them."""
    settings = _settings()
    if not settings.notify.enabled:
        err.print("notifications are off: set SOCFLOW_NOTIFY__ROUTES or SOCFLOW_NOTIFY__FILE", markup=False)
        raise typer.Exit(2)
    stop = threading.Event()
    while True:
        try:
            report = notify_pass(settings)
        except SocflowError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from exc
        console.print(" ".join(f"{k}={v}" for k, v in report.counts().items()), highlight=False)
        if not loop:
            return
        try:
            stop.wait(interval)
        except KeyboardInterrupt:
            return
