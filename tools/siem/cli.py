"""``socflow siem``: load logs, run Sigma detection to alerts, query by entity (a Typer sub-app)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from socflow.cli_output import console, err
from socflow.errors import InputError, SiemError
from socflow.settings import get_settings
from tools.siem.cli_rules import rules_app, tuning_app
from tools.siem.detect import DEFAULT_RULES_DIR, DetectReport, compile_rules
from tools.siem.detection import detection_pass, rule_set
from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import detect_batched
from tools.siem.models import EntityQuery, LoadReport
from tools.siem.stream import DetectionState, collect

app = typer.Typer(
    help="SIEM lookup: the embedded event store, Sigma detection, entity queries.", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")
app.add_typer(tuning_app, name="tuning")

SiemPath = Annotated[
    Path | None,
    typer.Option("--siem-path", help="Embedded SIEM SQLite file (default: settings, SOCFLOW_SIEM__PATH)."),
]


def _store(siem_path: Path | None) -> EmbeddedSiem:
    if siem_path is None:  # the CLI edge reads settings; the tool itself takes them as arguments
        siem_path = get_settings().siem.path
    return EmbeddedSiem(siem_path)


#: The key under which the socflow CLI puts its door factory (``socflow.doors.door_ingest``) in ``ctx.obj``.
INGEST_DOOR = "ingest_door"


def _ingest(make_door: Callable[..., Any], lines: list[str]) -> None:
    """Alerts into the ingest service of every door: grouping, run queueing, dispatch after commit."""
    with make_door(get_settings()) as door:
        result = door.service.ingest_text("\n".join(lines), actor="siem-detect")
    sent = "sent to the workers" if door.dispatches else "queued (run `socflow runs process`)"
    err.print(
        f"ingested: {result.accepted} new, {result.duplicates} already ingested, {result.rejected} rejected; "
        f"{len(result.runs_queued)} triage runs {sent}",
        markup=False,
        soft_wrap=True,
    )


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print("error: " + message, style="red", markup=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def load(
    paths: Annotated[list[Path], typer.Argument(help="EVTX, JSON/NDJSON, zip/tar.gz files or directories")],
    siem_path: SiemPath = None,
    show_skipped: Annotated[int, typer.Option(help="List at most this many skipped items")] = 20,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect", help="Then run the enabled rule pack on the events new since the detection cursor"
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --detect: write NDJSON alerts here (default: stdout)")
    ] = None,
) -> None:
    """Load logs into the embedded store (bad records are skipped with reasons; the rest goes on)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _fail(f"no such file or directory: {', '.join(missing)}")
    report = LoadReport()
    with (
        _store(siem_path) as siem,
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=not err.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("loading", total=None)

        def on_file(path: Path, index: int, total: int) -> None:
            progress.update(task, total=total, completed=index, description=f"loading {path.name[:40]}")

        report = siem.load(paths, on_file=on_file)
    err.print(
        f"loaded {report.loaded} events from {report.files} files; "
        f"{report.duplicates} duplicates; {report.skipped_count} skipped"
    )
    reasons = Counter(item.reason.split(":")[0] for item in report.skipped)
    for reason, count in reasons.most_common():
        err.print(f"  skipped {count}: {reason}")
    for item in report.skipped[:show_skipped]:
        if item.reason != "not a log file":
            err.print(f"  - {item.source}: {item.reason}", markup=False, soft_wrap=True)
    summary = {
        "loaded": report.loaded,
        "duplicates": report.duplicates,
        "skipped": report.skipped_count,
        "files": report.files,
    }
    if detect:
        settings = get_settings()
        if siem_path is not None:
            siem_settings = settings.siem.model_copy(update={"path": siem_path})
            settings = settings.model_copy(update={"siem": siem_settings})
        alerts, sink = collect()
        passed = detection_pass(settings, sink)
        handle = out.open("a", encoding="utf-8") if out else sys.stdout
        try:
            for alert in alerts:
                handle.write(alert.model_dump_json(exclude_none=True) + "\n")
        finally:
            if out:
                handle.close()
        err.print(
            f"detection: {passed.events} new events, {passed.detections} detections, {passed.alerts} alerts, "
            f"{sum(passed.suppressed.by_id.values())} suppressed, {passed.below_threshold} below threshold "
            f"({passed.seconds:.1f} s)"
        )
        summary.update({"alerts": passed.alerts, "detections": passed.detections})
    (err if detect and not out else console).print(json.dumps(summary), markup=False, highlight=False)


@app.command(name="detect")
def detect_command(
    ctx: typer.Context,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="Sigma rule directory (repeatable; default: the enabled rule pack)"),
    ] = None,
    curated: Annotated[
        bool, typer.Option("--curated", help="The 202 curated rules with regression samples, not the pack")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write NDJSON alerts here (default: stdout)")
    ] = None,
    siem_path: SiemPath = None,
    show_failed: Annotated[int, typer.Option(help="List at most this many failed rules")] = 10,
    ingest: Annotated[
        bool,
        typer.Option(
            "--ingest",
            help="Ingest the alerts (grouped into cases, triage runs queued and dispatched) "
            "instead of printing them.",
        ),
    ] = False,
) -> None:
    """Run Sigma rules over all loaded events and emit alerts in the generic alert format (NDJSON).

    Default: the enabled rules of the pack (``siem rules list``), evaluated in batches. This is a batch run
    over the whole store; ``siem load --detect`` and the scheduled job detect from a cursor instead.
    ``--ingest`` hands the alerts to the ingest door instead (grouped, triage runs queued and dispatched).
    """
    make_door = (ctx.obj or {}).get(INGEST_DOOR) if ingest and isinstance(ctx.obj, dict) else None
    if ingest and make_door is None:
        raise _fail("--ingest needs the socflow CLI (it provides the ingest door)")
    report = DetectReport()
    if rules or curated:
        rule_dirs = rules or [DEFAULT_RULES_DIR]
        for directory in rule_dirs:
            if not directory.is_dir():
                raise _fail(f"--rules {directory}: not a directory")
        compiled = compile_rules(rule_dirs, report)
    else:
        with _store(siem_path) as siem:
            compiled = rule_set(get_settings().detection, DetectionState(siem)).enabled()
        report.rules_total = report.rules_converted = len(compiled)
    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    lines: list[str] = []
    try:
        with _store(siem_path) as siem:
            for alert in detect_batched(siem, compiled, report):
                line = alert.model_dump_json(exclude_none=True)
                if ingest:
                    lines.append(line)
                else:
                    handle.write(line + "\n")
    except SiemError as exc:
        raise _fail(str(exc)) from exc
    finally:
        if out:
            handle.close()
    if make_door is not None:
        _ingest(make_door, lines)
    unsupported = sum("log source" in item.reason for item in report.failed)
    err.print(
        f"emitted {report.alerts} alerts from {report.rules_fired} rules "
        f"({report.rules_converted}/{report.rules_total} rules converted; not run: "
        f"{unsupported} for log sources other than Windows event logs, "
        f"{len(report.failed) - unsupported} failed)",
        soft_wrap=True,
    )
    for item in [i for i in report.failed if "log source" not in i.reason][:show_failed]:
        err.print(f"  - {item.source}: {item.reason}", markup=False, soft_wrap=True)


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _fail(f"--{name}: not an ISO 8601 timestamp: {value!r}") from exc


@app.command()
def query(
    host: Annotated[str | None, typer.Option(help="host.name")] = None,
    user: Annotated[str | None, typer.Option(help="user.name (without domain)")] = None,
    ip: Annotated[str | None, typer.Option(help="source.ip or destination.ip")] = None,
    process: Annotated[str | None, typer.Option(help="process.name, e.g. powershell.exe")] = None,
    hash: Annotated[str | None, typer.Option("--hash", help="file hash (substring of Hashes)")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 start, with time zone")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 end, with time zone")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="NDJSON events instead of a table")] = False,
    siem_path: SiemPath = None,
) -> None:
    """Events by entity and time window, oldest first."""
    try:
        entity_query = EntityQuery(
            host=host,
            user=user,
            ip=ip,
            process=process,
            hash=hash,
            since=_parse_time(since, "since"),
            until=_parse_time(until, "until"),
            limit=limit,
        )
    except InputError as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:  # pydantic ValidationError
        raise _fail(str(exc).splitlines()[0]) from exc
    with _store(siem_path) as siem:
        events = siem.search(entity_query)
    if as_json:
        for event in events:
            typer.echo(json.dumps(event.model_dump(mode="json"), ensure_ascii=True))
        return
    table = Table("time", "host", "user", "event", "process", "command line / ip")
    for event in events:
        table.add_row(
            event.timestamp or "",
            event.host or "",
            event.user or "",
            event.event_code or "",
            event.process or "",
            (event.command_line or event.source_ip or "")[:80],
        )
    console.print(table)
    err.print(f"{len(events)} events")
