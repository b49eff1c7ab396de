"""The sweeper: sends again the runs whose message was lost.

A run left ``queued`` longer than ``grace`` (its message lost with Redis, or never sent because the broker
was down at ingest), or ``running`` past its lease (its worker died), is sent to its queue again. Sending a
run twice is harmless: the runner's claim lets one worker advance it and makes the other a no-op. Recovery
never depends on Redis's visibility timeout.

A long backlog is not a loss: when a queue already holds at least as many messages as it has queued runs,
its queued runs are not sent again (on Redis, where the depth can be read), so a busy deployment does not
fill its queues with copies. Once the queue holds fewer messages than queued runs, every stale queued run of
that queue is sent again. It is the ``sweep`` periodic job
(``socflow.jobs``) of a deployment with a broker: run by ``socflow sweep`` (a loop, or ``--once``) or by the
``socflow.job`` task that ``socflow worker --beat`` schedules. Without a broker,
``socflow.sweep.LocalSweeper`` does the same job in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.metrics import queue_depths
from socflow.runner import RunStatus
from socflow.schemas import now_utc
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
    backlogged: int = 0  # stale queued runs not sent: their queue holds enough messages

    def __str__(self) -> str:
        return (
            f"{self.queued} queued and {self.expired} expired runs found, {self.sent} sent"
            + (f", {self.backlogged} left to a full queue" if self.backlogged else "")
            + (f", {self.failed} not sent (broker unreachable)" if self.failed else "")
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
        queue_of_workflow: Callable[[str], str] | None = None,
        depths: Callable[[list[str]], dict[str, int]] | None = None,
    ) -> None:
        self.factory = factory
        self.send = send
        self.queue_of_workflow = queue_of_workflow
        self.depths = depths
        self.grace = timedelta(seconds=grace_seconds)
        self.batch = batch
        self.clock = clock
        self._sent_at: dict[str, float] = {}  # run id -> monotonic time of this sweeper's last send

    @classmethod
    def for_dispatcher(
        cls, dispatcher: CeleryDispatcher, *, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> Sweeper:
        """The sweeper that sends through ``dispatcher`` (its broker, database and routing)."""
        url = dispatcher.settings.broker.url
        depths = (
            (lambda queues: queue_depths(url, queues)) if url.startswith(("redis://", "rediss://")) else None
        )
        return cls(
            dispatcher.factory,
            dispatcher.send,
            grace_seconds=grace_seconds,
            queue_of_workflow=dispatcher.queue_of_workflow,
            depths=depths,
        )

    def _backlogged_queues(self) -> set[str]:
        """Queues that hold at least as many messages as they have queued runs (nothing looks lost)."""
        if self.depths is None or self.queue_of_workflow is None:
            return set()
        with self.factory() as s:
            per_workflow = s.execute(
                select(WorkflowRun.workflow, func.count())
                .where(WorkflowRun.status == RunStatus.queued.value)
                .group_by(WorkflowRun.workflow)
            ).all()
        queued: dict[str, int] = {}
        for workflow, n in per_workflow:
            queue = self.queue_of_workflow(workflow)
            queued[queue] = queued.get(queue, 0) + int(n)
        depths = self.depths(list(queued))
        return {q for q, n in queued.items() if depths.get(q, 0) >= n}

    def candidates(self) -> tuple[list[tuple[str, str]], list[str]]:
        """([(id, workflow)] of queued runs older than the grace period, running runs past their lease)."""
        now = self.clock()
        with self.factory() as s:
            rows = s.execute(
                select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.workflow)
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
        queued = [(r.id, r.workflow) for r in rows if r.status == RunStatus.queued.value]
        return queued, [r.id for r in rows if r.status != RunStatus.queued.value]

    def sweep_once(self) -> SweepReport:
        stale, expired = self.candidates()
        now = time.monotonic()
        grace = self.grace.total_seconds()
        live = {run_id for run_id, _ in stale} | set(expired)
        self._sent_at = {k: v for k, v in self._sent_at.items() if k in live}
        queued = [run_id for run_id, _ in stale]
        backlogged = 0
        if stale:
            try:
                full = self._backlogged_queues()
            except Exception as exc:  # the broker is down: this pass sends nothing
                log.warning("sweep: cannot read the queue depths (%s); the next pass tries again", exc)
                return SweepReport(queued=len(stale), expired=len(expired), failed=len(stale) + len(expired))
            if full and self.queue_of_workflow is not None:
                of = self.queue_of_workflow
                queued = [run_id for run_id, workflow in stale if of(workflow) not in full]
                backlogged = len(stale) - len(queued)
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
        report = SweepReport(
            queued=len(stale), expired=len(expired), sent=sent, failed=failed, backlogged=backlogged
        )
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
