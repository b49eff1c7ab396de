"""The worker-side Celery app: the configuration from settings plus thin tasks.

- ``socflow.advance_run(run_id)``: ``Runner.advance``. The runner's claim makes a duplicate, late or
  redelivered message a no-op (a finished run returns ``advanced=False``). Transient database errors are
  retried with backoff; the task never touches the run row itself.
- ``socflow.job(name)``: one run of a periodic job of the registry (``socflow.jobs``; the sweeper first),
  scheduled by ``socflow worker --beat``. ``socflow.sweep()`` stays as the sweep job's old name.
- ``socflow.ingest_alerts(text, actor)``: alerts (JSON or NDJSON text) through the ingest service of every
  door (the services' ``ingest``): grouped, runs queued and sent to the workers after the commit.
  Idempotent: a redelivered message finds its alerts already stored (duplicates) and queues nothing.
- ``socflow.deliver_outbox()``: one pass of write-back deliveries (``socflow.outbox.deliver_outbox``; also
  the ``deliver_outbox`` periodic job).

Each worker process builds its ``Services`` once, lazily, with the ``build`` it is given (``socflow worker``
gives ``socflow.wiring.build_services``; tests give their own).

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

from socflow.jobs import JobRegistry
from socflow.logs import log_context
from socflow.outbox import deliver_outbox
from socflow.settings import Settings
from workers.config import celery_for
from workers.routing import ADVANCE_TASK, DELIVER_OUTBOX_TASK, INGEST_TASK, JOB_TASK, SWEEP_TASK
from workers.runtime import ServicesFactory, WorkerRuntime

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, DBAPIError, ConnectionError, TimeoutError)


def make_app(settings: Settings, *, build: ServicesFactory, jobs: JobRegistry | None = None) -> Celery:
    """The worker app on ``settings``; each worker process builds its services with ``build``.

    ``jobs``: the periodic jobs beat schedules (default: the names and intervals of the services' jobs are
    not known before a process builds them, so ``socflow worker`` passes ``wiring.build_jobs(settings)``).
    """
    app = celery_for(settings, jobs=jobs)
    runtime = WorkerRuntime(settings, build)
    job_lock = threading.Lock()  # a threads pool may run two beats of one job at once: one at a time
    app.socflow_runtime = runtime

    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _after_fork(**_: Any) -> None:
        runtime.reset()

    @app.task(  # type: ignore[untyped-decorator]
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

    @app.task(name=JOB_TASK, autoretry_for=TRANSIENT, max_retries=2)  # type: ignore[untyped-decorator]
    def run_job(name: str) -> None:
        services = runtime.services()
        with job_lock:
            services.jobs.get(name).run(services)

    @app.task(name=SWEEP_TASK, autoretry_for=TRANSIENT, max_retries=2)  # type: ignore[untyped-decorator]
    def sweep() -> None:
        run_job("sweep")

    @app.task(  # type: ignore[untyped-decorator]
        name=INGEST_TASK, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8
    )
    def ingest_alerts(text: str, actor: str = "celery") -> dict[str, int]:
        services = runtime.services()
        report = services.ingest.ingest_text(text, actor=actor)
        for run_id in report.runs_queued:  # after the commit, like every door
            services.dispatcher.submit(run_id)
        return {
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "runs_queued": len(report.runs_queued),
        }

    @app.task(name=DELIVER_OUTBOX_TASK, autoretry_for=TRANSIENT, max_retries=2)  # type: ignore[untyped-decorator]
    def deliver() -> dict[str, int]:
        return deliver_outbox(settings).counts()

    return app
