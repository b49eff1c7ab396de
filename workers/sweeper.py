"""The sweeper: sends again the runs whose message was lost.

A run left ``queued`` longer than ``grace`` (its message lost with Redis, or never sent because the broker
was down at ingest), or ``running`` past its lease (its worker died), is sent to its queue again. Sending a
run twice is harmless: the runner's claim lets one worker advance it and makes the other a no-op. Recovery
never depends on Redis's visibility timeout. Runs from ``socflow sweep`` (a loop, or ``--once``) or from
the ``socflow.sweep`` task that ``socflow worker --beat`` schedules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.runner import RunStatus
from socflow.schemas import now_utc
from socflow.settings import Settings
from socflow.tables import WorkflowRun
from workers.dispatch import CeleryDispatcher

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 60.0
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class SweepReport:
    queued: int = 0  # queued runs older than the grace period
    expired: int = 0  # running runs past their lease
    sent: int = 0
    failed: int = 0  # the broker could not be reached: next pass

    def __str__(self) -> str:
        return f"{self.queued} queued and {self.expired} expired runs found, {self.sent} sent" + (
            f", {self.failed} not sent (broker unreachable)" if self.failed else ""
        )


class Sweeper:
    def __init__(
        self,
        factory: sessionmaker[Session],
        send: Callable[[str], bool],
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        batch: int = DEFAULT_BATCH,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.factory = factory
        self.send = send
        self.grace = timedelta(seconds=grace_seconds)
        self.batch = batch
        self.clock = clock
        self._sent_at: dict[str, float] = {}  # run id -> monotonic time of this sweeper's last send

    @classmethod
    def from_settings(
        cls, settings: Settings, *, app: Celery | None = None, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> Sweeper:
        factory = session_factory(make_engine(settings.database.url))
        dispatcher = CeleryDispatcher(settings, app=app, factory=factory)
        return cls(factory, dispatcher.send, grace_seconds=grace_seconds)

    def candidates(self) -> tuple[list[str], list[str]]:
        """(queued runs older than the grace period, running runs past their lease), oldest first."""
        now = self.clock()
        with self.factory() as s:
            rows = s.execute(
                select(WorkflowRun.id, WorkflowRun.status)
                .where(
                    or_(
                        (WorkflowRun.status == RunStatus.queued.value)
                        & (WorkflowRun.updated_at < now - self.grace),
                        (WorkflowRun.status == RunStatus.running.value) & (WorkflowRun.lease_until < now),
                    )
                )
                .order_by(WorkflowRun.updated_at)
                .limit(self.batch)
            ).all()
        queued = [r.id for r in rows if r.status == RunStatus.queued.value]
        return queued, [r.id for r in rows if r.status != RunStatus.queued.value]

    def sweep_once(self) -> SweepReport:
        queued, expired = self.candidates()
        now = time.monotonic()
        grace = self.grace.total_seconds()
        live = set(queued) | set(expired)
        self._sent_at = {k: v for k, v in self._sent_at.items() if k in live}
        sent = failed = 0
        for run_id in [*expired, *queued]:
            last = self._sent_at.get(run_id)
            if last is not None and now - last < grace:
                continue  # sent by this sweeper moments ago: its message is probably still queued
            if self.send(run_id):
                self._sent_at[run_id] = now
                sent += 1
            else:
                failed += 1
                break  # the broker is down: the next pass tries again
        report = SweepReport(queued=len(queued), expired=len(expired), sent=sent, failed=failed)
        if sent or failed:
            log.info("sweep: %s", report)
        return report

    def run(self, interval: float, stop: threading.Event | None = None) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set; a failed pass is logged, not fatal."""
        stop = stop or threading.Event()
        while True:
            try:
                self.sweep_once()
            except Exception:  # the database may be briefly unreachable: the next pass tries again
                log.exception("sweep failed")
            if stop.wait(interval):
                return
