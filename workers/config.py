"""The Celery configuration from settings (shared by workers and by producers such as the dispatcher)."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from socflow.settings import Settings
from workers.routing import DELIVER_OUTBOX_TASK, INGEST, INGEST_TASK, SWEEP_TASK, WORKFLOWS, all_queues

DEFAULT_SWEEP_INTERVAL = 30.0
VISIBILITY_TIMEOUT = 3600  # Redis's redelivery of unacknowledged messages; recovery never waits for it
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}


OUTBOX_INTERVAL = 10.0  # seconds between write-back delivery passes under ``socflow worker --beat``


def celery_for(settings: Settings, *, sweep_interval: float = DEFAULT_SWEEP_INTERVAL) -> Celery:
    """A Celery app on ``settings.broker.url``: late acks, prefetch 1, no results, JSON ids only."""
    app = Celery("socflow", broker=settings.broker.url or None, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=WORKFLOWS,
        task_queues=[Queue(name) for name in all_queues(settings)],
        task_routes={
            SWEEP_TASK: {"queue": INGEST},
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
        socflow_sweep_grace=None,  # read by the sweep task; None: the sweeper's default
        beat_schedule={
            "socflow-sweep": {
                "task": SWEEP_TASK,
                "schedule": sweep_interval,
                "options": {"queue": INGEST, "expires": max(sweep_interval, 1.0)},
            },
            "socflow-deliver-outbox": {  # prod-a: write-back deliveries (socflow.outbox)
                "task": DELIVER_OUTBOX_TASK,
                "schedule": OUTBOX_INTERVAL,
                "options": {"queue": INGEST, "expires": OUTBOX_INTERVAL},
            },
        },
    )
    return app
