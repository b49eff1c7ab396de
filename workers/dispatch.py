"""``CeleryDispatcher``: hands a queued run to the broker (``SOCFLOW_BROKER__URL`` set).

It sends the run id to the queue its workflow runs on (``workers.routing.queue_for``). A failed send is
logged and swallowed: the run row is already committed as ``queued``, and the sweeper sends it again.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.errors import NotFoundError
from socflow.registry import WorkflowRegistry, discover
from socflow.settings import Settings
from socflow.tables import WorkflowRun
from workers.config import PUBLISH_RETRY, celery_for
from workers.routing import ADVANCE_TASK, WORKFLOWS, queue_for

log = logging.getLogger(__name__)

BROKER_DOWN_PAUSE = 5.0  # after a failed send, later sends are skipped this long (the sweeper catches up)


class CeleryDispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        app: Celery | None = None,
        factory: sessionmaker[Session] | None = None,
        registry: WorkflowRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.app = app or celery_for(settings)
        self._factory = factory
        self._registry = registry
        self._lock = threading.Lock()
        self._queues: dict[str, str] = {}
        self._down_until = 0.0

    @property
    def factory(self) -> sessionmaker[Session]:
        with self._lock:
            if self._factory is None:
                self._factory = session_factory(make_engine(self.settings.database.url))
            return self._factory

    def queue_of_workflow(self, workflow: str) -> str:
        with self._lock:
            if workflow not in self._queues:
                if self._registry is None:
                    self._registry = discover(self.settings.workflows.paths)
                try:
                    self._queues[workflow] = queue_for(self._registry.get(workflow), self.settings)
                except NotFoundError:  # an unknown workflow fails on the worker, visibly, not here
                    self._queues[workflow] = WORKFLOWS
            return self._queues[workflow]

    def queue_of(self, run_id: str) -> str:
        with self.factory() as s:
            workflow = s.scalar(select(WorkflowRun.workflow).where(WorkflowRun.id == run_id))
        return self.queue_of_workflow(workflow) if workflow else WORKFLOWS

    def send(self, run_id: str, *, queue: str | None = None) -> bool:
        """Publish ``advance_run(run_id)``; False (logged) when the broker cannot be reached.

        After a failure, sends are skipped for ``BROKER_DOWN_PAUSE`` seconds so that ingest never stalls on
        a dead broker: the runs stay queued in the database and the sweeper sends them later.
        """
        if time.monotonic() < self._down_until:
            return False
        try:
            self.app.send_task(
                ADVANCE_TASK,
                args=[run_id],
                queue=queue or self.queue_of(run_id),
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
            return True
        except Exception as exc:  # the run stays queued in the database; the sweeper sends it again
            log.warning("could not send run %s to the broker (%s); the sweeper will", run_id, exc)
            self._down_until = time.monotonic() + BROKER_DOWN_PAUSE
            return False

    def submit(self, run_id: str) -> None:
        self.send(run_id)

    def shutdown(self) -> None:
        self.app.close()
