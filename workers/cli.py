"""``socflow worker`` (start a Celery worker) and ``socflow worker status``.

``make_worker_cli(build)`` makes the command group; ``socflow.wiring`` registers it into the ``socflow`` CLI
with ``build_services`` (the platform core never imports ``workers``, and ``workers`` never imports
``socflow.wiring``).

    socflow worker                         # ingest + workflows (endpoint/scripted) or the model queue
    socflow worker --queues gpu            # a model-holding worker: one per GPU, a thread pool
    socflow worker --beat                  # ... and schedule the periodic jobs (the sweeper first)
    socflow worker status                  # which workers answer, their queues and active tasks
    socflow worker sweep [--once]          # the same as ``socflow sweep``
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from celery import Celery
from celery.signals import setup_logging
from rich.table import Table

from socflow.cli_output import console, emit_json, err, json_option
from socflow.errors import SocflowError
from socflow.jobs import JobRegistry
from socflow.logs import configure_logging
from socflow.services import Services
from socflow.settings import Settings, get_settings
from workers.celery_app import make_app
from workers.config import celery_for
from workers.routing import INGEST, default_queues, holds_model
from workers.runtime import set_cpu_threads


class BuildServices(Protocol):
    """``socflow.wiring.build_services``'s shape, as far as workers use it."""

    def __call__(
        self, settings: Settings, *, batching: bool | None = None, sweep_grace_seconds: float | None = None
    ) -> Services: ...


class Pool(StrEnum):
    prefork = "prefork"
    threads = "threads"
    solo = "solo"


def broker_settings() -> Settings:
    """The process settings; exit 2 when they are invalid or name no broker."""
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not settings.broker.url:
        err.print(
            "[red]error:[/red] SOCFLOW_BROKER__URL is empty: runs advance in-process (socflow serve, "
            "socflow runs process, socflow sweep); set it to redis://... to use workers",
            highlight=False,
        )
        raise typer.Exit(2)
    return settings


def load_builder(ref: str) -> BuildServices:
    """``module:function``: another composition's services builder (a test's, with a scripted model)."""
    module, _, attr = ref.partition(":")
    build = getattr(importlib.import_module(module), attr or "build_services", None)
    if not callable(build):
        raise typer.BadParameter(f"{ref} is not a services builder", param_hint="--services")
    return build  # type: ignore[no-any-return]


def worker_app(settings: Settings, build: BuildServices, jobs: JobRegistry) -> Celery:
    """The worker app: each process builds its services with ``build`` (batching when it holds the model)."""
    batching = holds_model(settings)

    def build_one(s: Settings) -> Services:
        return build(s, batching=batching, sweep_grace_seconds=s.worker.sweep_grace_seconds)

    return make_app(settings, build=build_one, jobs=jobs)


def make_worker_cli(
    build: BuildServices,
    jobs_for: Callable[[Settings], JobRegistry],
    sweep: Callable[..., None] | None = None,
) -> typer.Typer:
    """The ``socflow worker`` group over ``build`` (``socflow.wiring.build_services``) and the periodic
    jobs ``jobs_for(settings)`` (``socflow.wiring.build_jobs``) its beat schedules; ``sweep``, when given,
    is also offered as ``socflow worker sweep``."""
    app = typer.Typer(help="Celery workers: start one, or show which run.")

    @app.callback(invoke_without_command=True)
    def worker(
        ctx: typer.Context,
        queues: Annotated[
            str | None,
            typer.Option(
                "--queues",
                "-Q",
                help="Comma-separated queues. Default: the model queue (SOCFLOW_WORKER__MODEL_QUEUE) with "
                "the transformers backend, else ingest,workflows.",
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option("--concurrency", "-c", min=1, max=256, help="Default SOCFLOW_WORKER__CONCURRENCY."),
        ] = None,
        pool: Annotated[
            Pool | None,
            typer.Option(
                help="Default: threads for a model-holding worker (one model, batched), else prefork."
            ),
        ] = None,
        beat: Annotated[
            bool, typer.Option("--beat", help="Also schedule the periodic jobs (one beat per deployment).")
        ] = False,
        sweep_interval: Annotated[
            float | None,
            typer.Option(
                min=0.5,
                help="Seconds between sweeps (with --beat; default SOCFLOW_WORKER__SWEEP_INTERVAL_SECONDS).",
            ),
        ] = None,
        sweep_grace: Annotated[
            float | None,
            typer.Option(
                min=0.0,
                help="A queued run older than this is sent again "
                "(default SOCFLOW_WORKER__SWEEP_GRACE_SECONDS).",
            ),
        ] = None,
        cpu_threads: Annotated[
            int | None, typer.Option(min=1, help="torch threads of a model held on CPU (default: all cores).")
        ] = None,
        loglevel: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
        hostname: Annotated[
            str | None, typer.Option(help="Worker node name (default QUEUES-PID@HOST).")
        ] = None,
        schedule: Annotated[
            Path | None, typer.Option(help="Beat's schedule file (with --beat; default in a temp dir).")
        ] = None,
        services_ref: Annotated[
            str | None, typer.Option("--services", hidden=True, help="module:function building the services.")
        ] = None,
    ) -> None:
        """Start a Celery worker consuming QUEUES (runs ids only; the database is the truth)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = broker_settings()
        worker_group: dict[str, Any] = {}
        if sweep_interval is not None:
            worker_group["sweep_interval_seconds"] = sweep_interval
        if sweep_grace is not None:
            worker_group["sweep_grace_seconds"] = sweep_grace
        if worker_group:
            settings = settings.model_copy(update={"worker": settings.worker.model_copy(update=worker_group)})
        names = [q.strip() for q in queues.split(",") if q.strip()] if queues else default_queues(settings)
        if beat and INGEST not in names:
            names.append(INGEST)  # the periodic jobs are routed to the ingest queue
        model_worker = holds_model(settings) and settings.worker.model_queue in names
        chosen = pool or (Pool.threads if model_worker else Pool.prefork)
        if model_worker and settings.model.device != "cuda":
            set_cpu_threads(cpu_threads or os.cpu_count() or 1)  # before the model loads, lazily
        jobs = jobs_for(settings)
        celery_app = worker_app(settings, load_builder(services_ref) if services_ref else build, jobs)
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
        show_status(broker_settings(), timeout, as_json=as_json)

    if sweep is not None:
        app.command("sweep")(sweep)
    return app


def show_status(settings: Settings, timeout: float, *, as_json: bool = False) -> None:
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
