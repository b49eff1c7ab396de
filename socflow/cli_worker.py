"""``socflow sweep`` (hand on the runs left behind, with or without a broker) and ``socflow db prune``
(trim the checkpoint history of finished runs, ``socflow.prune``).

The Celery worker commands (``socflow worker``, ``socflow worker status``) live in ``workers/cli.py`` and
reach the CLI through ``socflow.wiring``: the platform core never imports ``workers``.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType
from typing import Annotated

import typer

from socflow import wiring
from socflow.cli_output import console, err
from socflow.db import make_engine, session_factory
from socflow.errors import SocflowError
from socflow.prune import prune_checkpoints
from socflow.settings import get_settings

log = logging.getLogger(__name__)


def db_prune(
    older_than: Annotated[
        float,
        typer.Option("--older-than", min=0, metavar="DAYS", help="Runs finished more than DAYS days ago."),
    ],
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="Return the freed space (VACUUM) afterwards.")
    ] = False,
) -> None:
    """Keep the final checkpoint of finished runs, delete their older checkpoint history.

    Runs still queued, running or awaiting a decision are never touched; nor are alerts, cases, notes,
    model calls or audit events.
    """
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    engine = make_engine(settings.database.url)
    try:
        report = prune_checkpoints(
            engine, session_factory(engine), older_than=timedelta(days=older_than), vacuum=vacuum
        )
    finally:
        engine.dispose()
    console.print(str(report), highlight=False)


def sweep(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.5, help="Seconds between passes (default SOCFLOW_WORKER__SWEEP_INTERVAL_SECONDS)."
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="A queued run older than this many seconds is taken again "
            "(default SOCFLOW_WORKER__SWEEP_GRACE_SECONDS).",
        ),
    ] = None,
) -> None:
    """Hand on again the runs left behind: queued longer than --grace, or running past their lease.

    With a broker (``SOCFLOW_BROKER__URL``) they are sent to their queue again; without one they are
    advanced here, in this process. Idempotent: a run handed on twice is advanced once (the runner's claim).
    ``socflow serve`` without a broker and ``socflow worker --beat`` already sweep on their own.
    """
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    services = wiring.cli_services(
        ctx, settings, dispatcher=None if settings.broker.url else "inline", sweep_grace_seconds=grace
    )
    try:
        if once:
            console.print(f"sweep: {services.sweeper.sweep_once()}", highlight=False)
            return
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        every = interval if interval is not None else settings.worker.sweep_interval_seconds
        err.print(f"sweeping every {every:g}s; Ctrl-C stops", highlight=False)
        while True:
            try:
                services.sweeper.sweep_once()
            except Exception:  # the database may be briefly unreachable: the next pass tries again
                log.exception("sweep failed")
            if stop.wait(every):
                return
    finally:
        services.close()
