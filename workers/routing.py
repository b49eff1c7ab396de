"""Queues and routing.

``ingest`` (CPU: housekeeping such as the sweeper), ``workflows`` (graph runs that need no in-process
model) and the model queue (``SOCFLOW_WORKER__MODEL_QUEUE``, default ``gpu``), consumed by workers that
hold the model in-process. A workflow's spec names its queue (``WorkflowSpec.queue``, default
``workflows``); with the ``transformers`` backend, runs on ``workflows`` go to the model queue instead,
since they call the in-process model. With ``endpoint`` (vLLM) or ``scripted`` they stay on plain CPU
workers.
"""

from __future__ import annotations

from socflow.sdk import WorkflowSpec
from socflow.settings import Settings

INGEST = "ingest"
WORKFLOWS = "workflows"

ADVANCE_TASK = "socflow.advance_run"
SWEEP_TASK = "socflow.sweep"  # the sweep job's own task (kept for messages already queued)
JOB_TASK = "socflow.job"  # one run of a periodic job, by name (socflow.jobs)
INGEST_TASK = "socflow.ingest_alerts"  # alerts (NDJSON text) through the door ingest service
DELIVER_OUTBOX_TASK = "socflow.deliver_outbox"  # write-back deliveries


def holds_model(settings: Settings) -> bool:
    """Whether workers of this configuration load the model in-process."""
    return settings.model.backend == "transformers"


def queue_for(spec: WorkflowSpec, settings: Settings) -> str:
    if spec.queue == WORKFLOWS and holds_model(settings):
        return settings.worker.model_queue
    return spec.queue


def all_queues(settings: Settings) -> list[str]:
    return list(dict.fromkeys([INGEST, WORKFLOWS, settings.worker.model_queue]))


def default_queues(settings: Settings) -> list[str]:
    """What ``socflow worker`` consumes without ``--queues``: the model queue when this configuration holds
    the model in-process (one such worker per GPU), else ``ingest`` and ``workflows``."""
    if holds_model(settings):
        return [settings.worker.model_queue]
    return [INGEST, WORKFLOWS]
