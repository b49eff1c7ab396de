"""``socflow db prune``: trim the checkpoint history of finished runs (``socflow.prune``).

The worker commands themselves (``socflow worker``, ``socflow worker status``, ``socflow sweep``) live in
``workers/cli.py`` and reach the CLI through ``socflow.wiring``: the platform core never imports
``workers``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from socflow.cli_output import console, err
from socflow.db import make_engine, session_factory
from socflow.errors import SocflowError
from socflow.prune import prune_checkpoints
from socflow.settings import get_settings


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
