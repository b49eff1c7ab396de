"""The Celery configuration from settings (shared by workers and by producers such as the dispatcher)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from socflow.jobs import JobRegistry
from socflow.settings import Settings
from workers.routing import (
    DELIVER_OUTBOX_TASK,
    INGEST,
    INGEST_TASK,
    JOB_TASK,
    SWEEP_TASK,
    WORKFLOWS,
    all_queues,
)

VISIBILITY_TIMEOUT = 3600  # Redis's redelivery of unacknowledged messages; recovery never waits for it
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}


def beat_schedule(jobs: JobRegistry | None) -> dict[str, dict[str, Any]]:
    """One beat entry per periodic job: ``socflow.job(name)`` every ``job.every`` seconds on ``ingest``."""
    return {
        f"socflow-{job.name}": {
            "task": JOB_TASK,
            "args": [job.name],
            "schedule": job.every,
            "options": {"queue": INGEST, "expires": max(job.every, 1.0)},
        }
        for job in jobs or ()
    }


def celery_for(settings: Settings, *, jobs: JobRegistry | None = None) -> Celery:
    """A Celery app on ``settings.broker.url``: late acks, prefetch 1, no results, JSON ids only.

    ``jobs``: the periodic jobs its beat schedules (``socflow worker --beat``); none for a producer."""
    app = Celery("socflow", broker=settings.broker.url or None, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=WORKFLOWS,
        task_queues=[Queue(name) for name in all_queues(settings)],  # type: ignore[no-untyped-call]
        task_routes={
            SWEEP_TASK: {"queue": INGEST},
            JOB_TASK: {"queue": INGEST},
            INGEST_TASK: {"queue": INGEST},
            DELIVER_OUTBOX_TASK: {"queue": INGEST},
        },
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry_policy=PUBLISH_RETRY,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=3,
        broker_transport_options={"socket_connect_timeout": 3, "visibility_timeout": VISIBILITY_TIMEOUT},
        # Running tasks finish when the broker goes away: their runs live in the database anyway.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_redirect_stdouts=False,
        enable_utc=True,
        timezone="UTC",
        beat_schedule=beat_schedule(jobs),
    )
    return app
