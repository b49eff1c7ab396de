"""The in-process sweeper: advances the runs a crash or a failed request left behind, without a broker.

Runs left ``queued`` (the process died before advancing them, or a request committed them and then failed
before handing them on) and runs ``running`` past their lease (their process was killed mid-run) are handed
to ``submit`` again: the serving process's background thread (``ThreadDispatcher.submit``) in
``socflow serve``, or ``Runner.advance`` itself in ``socflow sweep`` without a broker. A queued run is only
taken after ``grace`` seconds, so the request that queued it hands it on first; on the first pass after a
start nothing is in flight here, so every runnable run is taken at once. Submitting a run twice is harmless:
the runner's claim advances it once.

With a broker the Celery sweeper (``workers.sweeper``) does the same job by sending the runs to their queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.runner import RunStatus
from socflow.schemas import now_utc
from socflow.tables import WorkflowRun

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 60.0
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class LocalSweepReport:
    queued: int = 0
    expired: int = 0
    submitted: int = 0

    def __str__(self) -> str:
        found = f"{self.queued} queued and {self.expired} expired runs found"
        return f"{found}, {self.submitted} advanced in-process"


class LocalSweeper:
    def __init__(
        self,
        factory: sessionmaker[Session],
        submit: Callable[[str], object],
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        batch: int = DEFAULT_BATCH,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.factory = factory
        self.submit = submit
        self.grace = timedelta(seconds=grace_seconds)
        self.batch = batch
        self.clock = clock
        self._started = False

    def candidates(self) -> tuple[list[str], list[str]]:
        """(queued runs older than the grace period, or all of them on the first pass; expired runs)."""
        now = self.clock()
        cutoff = now - self.grace if self._started else now
        with self.factory() as s:
            rows = s.execute(
                select(WorkflowRun.id, WorkflowRun.status)
                .where(
                    or_(
                        (WorkflowRun.status == RunStatus.queued.value) & (WorkflowRun.updated_at <= cutoff),
                        (WorkflowRun.status == RunStatus.running.value) & (WorkflowRun.lease_until < now),
                    )
                )
                .order_by(WorkflowRun.created_at)
                .limit(self.batch)
            ).all()
        self._started = True
        queued = [r.id for r in rows if r.status == RunStatus.queued.value]
        return queued, [r.id for r in rows if r.status != RunStatus.queued.value]

    def sweep_once(self) -> LocalSweepReport:
        queued, expired = self.candidates()
        for run_id in [*expired, *queued]:
            self.submit(run_id)
        report = LocalSweepReport(
            queued=len(queued), expired=len(expired), submitted=len(queued) + len(expired)
        )
        if report.submitted:
            log.info("sweep: %s", report)
        return report
