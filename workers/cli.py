"""``socflow worker`` (start a Celery worker), ``socflow worker status`` and ``socflow sweep``.

Registered into the ``socflow`` CLI by ``socflow.wiring`` (the platform core never imports ``workers``).

    socflow worker                         # ingest + workflows (endpoint/scripted) or the model queue
    socflow worker --queues gpu            # a model-holding worker: one per GPU, a thread pool
    socflow worker --beat                  # ... and schedule the sweeper every --sweep-interval seconds
    socflow worker status                  # which workers answer, their queues and active tasks
    socflow sweep [--once]                 # send lost runs again (queued too long, or past their lease)
"""

from __future__ import annotations

import importlib
import os
import signal
import tempfile
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from celery import Celery
from celery.signals import setup_logging
from rich.table import Table

from socflow.cli_output import console, emit_json, err, json_option
from socflow.errors import SocflowError
from socflow.logs import configure_logging
from socflow.settings import Settings, get_settings
from workers.celery_app import make_app
from workers.config import DEFAULT_SWEEP_INTERVAL, celery_for
from workers.routing import INGEST, default_queues, holds_model
from workers.runtime import set_cpu_threads
from workers.sweeper import DEFAULT_GRACE_SECONDS, Sweeper

app = typer.Typer(help="Celery workers: start one, or show which run.")


class Pool(StrEnum):
    prefork = "prefork"
    threads = "threads"
    solo = "solo"


def _settings() -> Settings:
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not settings.broker.url:
        err.print(
            "[red]error:[/red] SOCFLOW_BROKER__URL is empty: runs advance in-process (socflow serve, "
            "socflow runs process); set it to redis://... to use workers",
            highlight=False,
        )
        raise typer.Exit(2)
    return settings


def load_app(ref: str | None, settings: Settings, sweep_interval: float) -> Celery:
    """The worker app: built from settings, or ``module:attribute`` (another composition, e.g. a test's)."""
    if not ref:
        return make_app(settings, sweep_interval=sweep_interval)
    module, _, attr = ref.partition(":")
    celery_app = getattr(importlib.import_module(module), attr or "app")
    if not isinstance(celery_app, Celery):
        raise typer.BadParameter(f"{ref} is not a Celery app", param_hint="--app")
    celery_app.conf.beat_schedule["socflow-sweep"]["schedule"] = sweep_interval
    return celery_app


@app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="Comma-separated queues. Default: the model queue (SOCFLOW_WORKER__MODEL_QUEUE) with the "
            "transformers backend, else ingest,workflows.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, max=256, help="Default SOCFLOW_WORKER__CONCURRENCY."),
    ] = None,
    pool: Annotated[
        Pool | None,
        typer.Option(help="Default: threads for a model-holding worker (one model, batched), else prefork."),
    ] = None,
    beat: Annotated[
        bool, typer.Option("--beat", help="Also schedule the sweeper (one per deployment).")
    ] = False,
    sweep_interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between sweeps (with --beat).")
    ] = DEFAULT_SWEEP_INTERVAL,
    sweep_grace: Annotated[
        float, typer.Option(min=0.5, help="A queued run older than this is sent again (with --beat).")
    ] = DEFAULT_GRACE_SECONDS,
    cpu_threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads of a model held on CPU (default: all cores).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    hostname: Annotated[str | None, typer.Option(help="Worker node name (default QUEUES-PID@HOST).")] = None,
    schedule: Annotated[
        Path | None, typer.Option(help="Beat's schedule file (with --beat; default in a temp dir).")
    ] = None,
    app_ref: Annotated[str | None, typer.Option("--app", hidden=True, help="module:attribute.")] = None,
) -> None:
    """Start a Celery worker consuming QUEUES (runs ids only; the database is the truth)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else default_queues(settings)
    if beat and INGEST not in names:
        names.append(INGEST)  # the sweep task is routed to the ingest queue
    model_worker = holds_model(settings) and settings.worker.model_queue in names
    chosen = pool or (Pool.threads if model_worker else Pool.prefork)
    if model_worker and settings.model.device != "cuda":
        set_cpu_threads(cpu_threads or os.cpu_count() or 1)  # before the model loads, lazily
    celery_app = load_app(app_ref, settings, sweep_interval)
    celery_app.conf.socflow_sweep_grace = sweep_grace
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--queues={','.join(names)}",
        f"--concurrency={concurrency or settings.worker.concurrency}",
        f"--pool={chosen.value}",
        f"--hostname={hostname or '+'.join(names) + f'-{os.getpid()}@%h'}",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        path = schedule or Path(tempfile.mkdtemp(prefix="socflow-beat-")) / "schedule"
        argv += ["--beat", f"--schedule={path}"]

    def _logging(**_: object) -> None:  # Celery then leaves the root logger to socflow's handler
        configure_logging(settings)

    setup_logging.connect(_logging, weak=False)
    celery_app.worker_main(argv)


@app.command("status")
def status(
    timeout: Annotated[float, typer.Option(min=0.1, max=60, help="Seconds to wait for replies.")] = 2.0,
    as_json: json_option = False,
) -> None:
    """Which workers answer, their queues, pool and active tasks (celery inspect). Exit 1 when none."""
    settings = _settings()
    celery_app = celery_for(settings)
    inspect = celery_app.control.inspect(timeout=timeout)
    try:
        stats = inspect.stats() or {}
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception as exc:  # the broker is unreachable
        err.print(f"[red]error:[/red] cannot reach the broker: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        celery_app.close()
    if as_json:
        emit_json(
            [
                {
                    "worker": name,
                    "queues": [q["name"] for q in queues.get(name, [])],
                    "pool": (info.get("pool") or {}).get("implementation"),
                    "concurrency": (info.get("pool") or {}).get("max-concurrency"),
                    "active": len(active.get(name, [])),
                    "processed": sum(int(v) for v in (info.get("total") or {}).values()),
                }
                for name, info in sorted(stats.items())
            ]
        )
        if not stats:
            raise typer.Exit(1)
        return
    if not stats:
        err.print("no worker answered")
        raise typer.Exit(1)
    table = Table("worker", "queues", "pool", "concurrency", "active", "processed", title="workers")
    for name, info in sorted(stats.items()):
        pool_info = info.get("pool", {})
        total = sum(int(v) for v in (info.get("total") or {}).values())
        table.add_row(
            name,
            ",".join(q["name"] for q in queues.get(name, [])),
            str(pool_info.get("implementation", "-")).split(":", 1)[0].rsplit(".", 1)[-1],
            str(pool_info.get("max-concurrency", "-")),
            str(len(active.get(name, []))),
            str(total),
        )
    console.print(table)


def sweep(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between passes.")
    ] = DEFAULT_SWEEP_INTERVAL,
    grace: Annotated[
        float, typer.Option(min=0.0, help="A queued run older than this many seconds is sent again.")
    ] = DEFAULT_GRACE_SECONDS,
) -> None:
    """Send again the runs whose message was lost: queued longer than --grace, or running past their lease.

    Idempotent: a run sent twice is advanced once (the runner's claim). Run one sweeper per deployment
    (or ``socflow worker --beat``).
    """
    settings = _settings()
    configure_logging(settings)
    sweeper = Sweeper.from_settings(settings, grace_seconds=grace)
    if once:
        console.print(f"sweep: {sweeper.sweep_once()}", highlight=False)
        return
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    err.print(f"sweeping every {interval:g}s (grace {grace:g}s); Ctrl-C stops", highlight=False)
    sweeper.run(interval, stop)


app.command("sweep")(sweep)
