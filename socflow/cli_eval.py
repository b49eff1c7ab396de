"""``socflow eval`` (AI quality on labelled data) and ``socflow bench`` (speed and cost).

Both are plain functions; ``socflow.cli`` registers them with ``app.command("eval")(eval_command)`` and
``app.command("bench")(bench_command)``. Tasks that need the tools come from ``wiring.eval_tasks()``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from socflow import wiring
from socflow.cli_output import console, err
from socflow.errors import SocflowError
from socflow.evaluation import calibrate, injection, replay, triage
from socflow.evaluation.bench import run_bench
from socflow.evaluation.report import EvalReport, flatten, format_value
from socflow.evaluation.tasks import CountingRecorder, EvalOptions, EvalTask, model_settings
from socflow.model.factory import build_model_client
from socflow.settings import get_settings

CORE_TASKS: dict[str, EvalTask] = {"triage": triage.run, "replay": replay.run, "injection": injection.run}


def all_tasks() -> dict[str, EvalTask]:
    return {**wiring.eval_tasks(), **CORE_TASKS}


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def metrics_table(report: EvalReport) -> Table:
    table = Table(title=f"{report.task} on {report.dataset} (model {report.model})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in [*((f"count.{k}", v) for k, v in report.counts.items()), *flatten(report.metrics)]:
        table.add_row(name, format_value(value))
    for name, value in report.totals().items():
        table.add_row(f"total.{name}", format_value(value))
    return table


def eval_command(
    task: Annotated[
        str, typer.Argument(help="attack-text, attack-logs, triage, replay, injection or grounding.")
    ],
    dataset: Annotated[
        Path, typer.Argument(help="JSONL file, log folder, or (replay) a SQLite database file.")
    ],
    model: Annotated[
        str, typer.Option(help="'none', 'smollm2' (the demo model), or a local HF directory / GGUF file.")
    ] = "none",
    backend: Annotated[
        str | None, typer.Option(help="transformers (default) or endpoint (uses the configured URL).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N items only.")] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="attack-logs: only files matching this glob (repeatable).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="attack-logs: labels.csv / labels.jsonl elsewhere.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    fit_calibration: Annotated[
        Path | None,
        typer.Option(
            help="triage: fit the confidence calibration (temperature) on half the items, report ECE before "
            "and after on the other half, and write it here (then set SOCFLOW_MODEL__CALIBRATION)."
        ),
    ] = None,
) -> None:
    """Measure AI quality on labelled data: metrics table, and a JSON report with per-item predictions."""
    tasks = all_tasks()
    if task not in tasks:
        raise _fail(f"unknown task {task!r}; choose from {', '.join(sorted(tasks))}")
    if fit_calibration is not None and task != "triage":
        raise _fail("--fit-calibration goes with the triage task")
    if not dataset.exists():
        raise _fail(f"{dataset}: no such file or folder")
    settings = get_settings()
    counter = CountingRecorder()
    try:
        chosen = model_settings(model, backend, settings.model)
        client = build_model_client(chosen, counter) if chosen is not None else None
    except SocflowError as exc:
        raise _fail(str(exc)) from exc
    with (
        tempfile.TemporaryDirectory(prefix="socflow-eval-") as workdir,
        Progress(
            TextColumn(task),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as bar,
    ):
        progress = bar.add_task(task, total=None)
        opts = EvalOptions(
            task=task,
            dataset=dataset,
            workdir=Path(workdir),
            model=client,
            model_name=model,
            limit=limit,
            include=tuple(include or ()),
            labels=labels,
            counter=counter,
            on_total=lambda n: bar.update(progress, total=n),
            on_item=lambda: bar.advance(progress),
        )
        try:
            if fit_calibration is not None:
                prompt_for, verdict_labels = wiring.triage_scoring()
                report = calibrate.fit(opts, fit_calibration, prompt_for, verdict_labels)
            else:
                report = tasks[task](opts)
        except SocflowError as exc:
            raise _fail(str(exc)) from exc
    console.print(metrics_table(report))
    if out is not None:
        report.write(out)
        console.print(f"report written to {out}", highlight=False)


def bench_command(
    out: Annotated[Path, typer.Option(help="Write the figures here (JSON).")] = Path("bench-results.json"),
    alerts: Annotated[int, typer.Option(min=20, help="Storm size (alerts from 20 incidents).")] = 10_000,
    overhead_alerts: Annotated[int, typer.Option(min=1, help="Alerts for the overhead comparison.")] = 50,
    siem_events: Annotated[
        int, typer.Option(min=1000, help="Generated events for SIEM throughput.")
    ] = 100_000,
    batching: Annotated[bool, typer.Option(help="Measure model batching (tiny model, needs torch).")] = True,
    ingest_alerts: Annotated[
        int,
        typer.Option(min=20, help="API ingest: alerts per load (each opening a case; a 20-incident storm)."),
    ] = 10_000,
    postgres_url: Annotated[
        str,
        typer.Option(
            envvar="SOCFLOW_BENCH_POSTGRES_URL",
            help="API ingest on PostgreSQL too: a server URL whose user may create databases (one is created "
            "and dropped per load).",
        ),
    ] = "",
) -> None:
    """Speed and cost, measured side by side in one run: figures printed and written as JSON."""
    with tempfile.TemporaryDirectory(prefix="socflow-bench-") as workdir:
        results = run_bench(
            Path(workdir),
            storm_alerts=alerts,
            overhead_alerts=overhead_alerts,
            siem_events=siem_events,
            batching_enabled=batching,
            ingest_alerts=ingest_alerts,
            postgres_url=postgres_url or None,
            say=lambda line: console.print(line, highlight=False, markup=False),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(results.to_json(), encoding="utf-8")
    console.print(f"figures written to {out}", highlight=False)
