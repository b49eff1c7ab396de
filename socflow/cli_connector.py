"""``socflow connector run NAME``: pull alerts from Elastic Security or OpenSearch, Splunk ES, a drop folder.

Every option has an environment name (``SOCFLOW_CONNECTOR__URL``, ``SOCFLOW_CONNECTOR__PASSWORD``, ...), so
credentials need not appear on a command line. Alerts go through the ingest service of every door
(``socflow.doors.door_ingest``): grouped into cases, one triage run queued per new case and dispatched after
the commit (to Celery when a broker is configured; with ``--follow`` and no broker, advanced in this
process). Cursors live in the ``connector_cursors`` table of ``SOCFLOW_DATABASE__URL``.

``--follow`` (the default without ``--once``) runs the connector as a long-lived service: it polls every
``--interval`` seconds, re-reads ``--lookback`` seconds before its cursor for late-indexed alerts
(Elastic and Splunk; each ingested once), backs off while the source is down, and stops cleanly on SIGTERM
or Ctrl-C. A pulled item that cannot be read or is refused (unreadable JSON, a 5,000-digit number, nesting
too deep, a field the schema refuses) is kept as a dead letter (``socflow deadletters list --door
connector``) and never stops its page or the cursor.
"""

from __future__ import annotations

import json
import signal
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from socflow.cli_output import console, err
from socflow.connectors import (
    DEFAULT_INDEX,
    Connector,
    ConnectorError,
    DbCursorStore,
    ElasticAlertsConnector,
    FolderWatcher,
    IngestFn,
    PollResult,
    SplunkNotablesConnector,
)
from socflow.db import make_engine, session_factory
from socflow.doors import door_ingest
from socflow.errors import SocflowError
from socflow.ingest import IngestService, Refusal
from socflow.logs import configure_logging
from socflow.normalize import FORMATS
from socflow.schemas import IngestReport
from socflow.settings import get_settings

app = typer.Typer(help="Pull connectors: Elastic Security alerts, Splunk ES notables, a drop folder.")

ENV = "SOCFLOW_CONNECTOR__"


@app.callback()
def _group() -> None:
    """Pull connectors: Elastic Security alerts, Splunk ES notables, a drop folder."""


class Kind(StrEnum):
    elastic = "elastic"
    splunk = "splunk"
    folder = "folder"


def ingest_callback(service: IngestService, actor: str) -> IngestFn:
    """Generic alerts -> the ingest service (one call per page)."""

    def call(alerts: list[dict[str, Any]]) -> IngestReport:
        return service.ingest_text("\n".join(json.dumps(a) for a in alerts), actor=actor)

    return call


def _field_map(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--field-map") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise typer.BadParameter('a JSON object {"title": "alert.name", ...}', param_hint="--field-map")
    return {str(k): v for k, v in value.items()}


def _print(name: str, result: PollResult) -> None:
    line = f"{name}: {result.summary()}"
    if result.cursor:
        line += f" cursor={json.dumps(result.cursor, separators=(',', ':'))}"
    console.print(line, markup=False, highlight=False)
    for problem in result.problems:
        err.print(f"  {problem}", markup=False, highlight=False)


@app.command("run")
def run(
    name: Annotated[Kind, typer.Argument(help="Which connector: elastic, splunk or folder.")],
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Run as a long-lived service (the default without --once).")
    ] = False,
    lookback: Annotated[
        float,
        typer.Option(
            min=0,
            help="Elastic, Splunk: seconds before the cursor re-read for late alerts (each ingested once).",
            envvar=ENV + "LOOKBACK",
        ),
    ] = 300.0,
    ca_bundle: Annotated[
        str, typer.Option(help="CA bundle file for TLS verification.", envvar=ENV + "CA_BUNDLE")
    ] = "",
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between polls.", envvar=ENV + "INTERVAL")
    ] = 60.0,
    url: Annotated[
        str, typer.Option(help="Elasticsearch or Splunk management URL.", envvar=ENV + "URL")
    ] = "",
    index: Annotated[str, typer.Option(help="Elastic alerts index.", envvar=ENV + "INDEX")] = DEFAULT_INDEX,
    username: Annotated[str, typer.Option(help="Basic auth user.", envvar=ENV + "USERNAME")] = "",
    password: Annotated[str, typer.Option(help="Basic auth password.", envvar=ENV + "PASSWORD")] = "",
    api_key: Annotated[
        str, typer.Option(help="Elastic API key (ApiKey header).", envvar=ENV + "API_KEY")
    ] = "",
    token: Annotated[str, typer.Option(help="Bearer token (Splunk auth token).", envvar=ENV + "TOKEN")] = "",
    since: Annotated[
        str, typer.Option(help="Where the first poll starts (now-24h / -24h).", envvar=ENV + "SINCE")
    ] = "",
    size: Annotated[int, typer.Option(min=1, max=10_000, help="Alerts per page.", envvar=ENV + "SIZE")] = 500,
    timeout: Annotated[
        float, typer.Option(min=1, help="HTTP timeout, seconds.", envvar=ENV + "TIMEOUT")
    ] = 30.0,
    verify: Annotated[bool, typer.Option(help="Verify TLS certificates.", envvar=ENV + "VERIFY")] = True,
    path: Annotated[Path | None, typer.Option(help="Drop folder to watch.", envvar=ENV + "PATH")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Alert format of what is pulled, or auto (default: auto for the folder, the vendor "
            "format for elastic and splunk).",
            envvar=ENV + "FORMAT",
        ),
    ] = "",
    field_map: Annotated[
        str,
        typer.Option(
            help='Folder, custom format: JSON {"title": "alert.name", ...}.', envvar=ENV + "FIELD_MAP"
        ),
    ] = "",
    source: Annotated[
        str, typer.Option(help="Override the alerts' source name.", envvar=ENV + "SOURCE")
    ] = "",
    settle: Annotated[
        float,
        typer.Option(min=0, help="Folder: skip files modified this recently (s).", envvar=ENV + "SETTLE"),
    ] = 2.0,
) -> None:
    """Run a connector: poll, normalize, ingest, print per-poll counts (Ctrl-C stops it cleanly)."""
    if once and follow:
        raise typer.BadParameter("--once and --follow exclude each other", param_hint="--follow")
    if fmt and fmt != "auto" and fmt not in FORMATS:
        raise typer.BadParameter(f"expected auto or one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc
    configure_logging(settings, extra_secrets=(password, api_key, token))
    factory = session_factory(make_engine(settings.database.url, echo=settings.database.echo))
    connector: Connector
    try:
        door = door_ingest(settings, factory=factory, long_lived=not once)
    except SocflowError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc
    actor = f"connector:{name.value}"
    ingest = ingest_callback(door.service, actor=actor)

    def dead_letter(refused: list[Refusal]) -> int:
        return door.service.refuse(refused, actor=actor)

    try:
        if name is Kind.folder:
            if path is None:
                raise typer.BadParameter("the folder connector needs --path", param_hint="--path")
            connector = FolderWatcher(
                path,
                ingest,
                fmt=fmt or "auto",
                field_map=_field_map(field_map),
                source=source or None,
                settle_seconds=settle,
                dead_letter=dead_letter,
            )
        else:
            common: dict[str, Any] = {
                "cursors": DbCursorStore(factory),
                "size": size,
                "since": since or None,
                "username": username or None,
                "password": password or None,
                "api_key": api_key or None,
                "bearer_token": token or None,
                "timeout": timeout,
                "verify": verify,
                "ca_bundle": ca_bundle or None,
                "source": source or None,
                "lookback": lookback,
                "dead_letter": dead_letter,
                "fmt": fmt or None,
            }
            if name is Kind.elastic:
                connector = ElasticAlertsConnector(url, ingest, index=index, **common)
            else:
                connector = SplunkNotablesConnector(url, ingest, **common)
    except SocflowError as exc:
        door.close()
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc

    try:
        if once:
            try:
                result = connector.poll_once()
            except ConnectorError as exc:
                err.print(f"error: {exc}", markup=False)
                raise typer.Exit(1) from exc
            _print(name.value, result)
            if not door.dispatches and result.accepted:
                console.print(
                    "no broker is configured: run `socflow runs process` to advance the queued runs",
                    markup=False,
                    highlight=False,
                )
            if result.rejected:
                raise typer.Exit(1)
            return
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            connector.run(
                interval,
                stop,
                on_poll=lambda r: _print(name.value, r),
                on_error=lambda e: err.print(f"error: {e}", markup=False),
            )
        except KeyboardInterrupt:
            stop.set()
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        connector.close()
        door.close()
