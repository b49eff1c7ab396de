"""The worker-side Celery app: the configuration from settings plus two thin tasks.

- ``socflow.advance_run(run_id)``: ``Runner.advance``. The runner's claim makes a duplicate, late or
  redelivered message a no-op (a finished run returns ``advanced=False``). Transient database errors are
  retried with backoff; the task never touches the run row itself.
- ``socflow.sweep()``: one pass of the sweeper (scheduled by ``socflow worker --beat``).

A worker killed mid-run leaves its message unacknowledged in Redis until the visibility timeout (an hour);
recovery does not wait for it: the run's lease expires and the sweeper sends the run again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy.exc import DBAPIError, OperationalError

from socflow.logs import log_context
from socflow.settings import Settings
from workers.config import DEFAULT_SWEEP_INTERVAL, celery_for
from workers.routing import ADVANCE_TASK, SWEEP_TASK
from workers.runtime import RunnerFactory, WorkerRuntime, default_runner
from workers.sweeper import DEFAULT_GRACE_SECONDS, Sweeper

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, DBAPIError, ConnectionError, TimeoutError)


def make_app(
    settings: Settings,
    *,
    runner_factory: RunnerFactory = default_runner,
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    sweep_grace: float = DEFAULT_GRACE_SECONDS,
) -> Celery:
    """The worker app on ``settings``; each worker process builds its runner with ``runner_factory``."""
    app = celery_for(settings, sweep_interval=sweep_interval)
    runtime = WorkerRuntime(settings, runner_factory)
    sweepers: dict[str, Sweeper] = {}
    sweep_lock = threading.Lock()
    app.socflow_runtime = runtime  # type: ignore[attr-defined]

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        runtime.reset()
        sweepers.clear()

    @app.task(
        name=ADVANCE_TASK,
        autoretry_for=TRANSIENT,
        retry_backoff=True,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=8,
    )
    def advance_run(run_id: str) -> None:
        with log_context(run_id=run_id):
            result = runtime.runner().advance(run_id)
            log.info("run %s: %s (advanced=%s)", run_id, result.status.value, result.advanced)

    @app.task(name=SWEEP_TASK, autoretry_for=TRANSIENT, max_retries=2)
    def sweep() -> None:
        with sweep_lock:
            if "sweeper" not in sweepers:
                grace = app.conf.get("socflow_sweep_grace") or sweep_grace
                sweepers["sweeper"] = Sweeper.from_settings(settings, app=app, grace_seconds=float(grace))
            sweepers["sweeper"].sweep_once()

    return app
