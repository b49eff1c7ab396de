"""Periodic jobs: one registry, two schedulers.

A ``Job`` is a name, an interval and a function of the process's ``Services``. The registry
(``socflow.wiring.build_jobs``) is the one list of what runs periodically: the sweeper now; connectors,
detection, deliveries and SLA checks as they come. With a broker (``SOCFLOW_BROKER__URL`` set) the jobs run
on Celery beat (``socflow worker --beat``: one ``socflow.job`` task per job, on the ``ingest`` queue);
without one they run on ``Scheduler``, a daemon thread in the serving process (``socflow serve``).

    jobs = JobRegistry([Job("sweep", 30.0, lambda svc: svc.sweeper.sweep_once())])
    scheduler = Scheduler(jobs, services)   # every job runs once at start, then every ``every`` seconds
    scheduler.start(); ...; scheduler.stop()

A failing job is logged and tried again at its next turn; it never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from socflow.errors import NotFoundError

if TYPE_CHECKING:
    from socflow.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every: float  # seconds between runs
    run: Callable[[Services], object]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.every > 0:
            raise ValueError("a job needs a name and a positive interval")


class JobRegistry:
    """The periodic jobs of a deployment, by name (insertion order kept)."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._jobs: dict[str, Job] = {}
        for job in jobs:
            self.add(job)

    def add(self, job: Job) -> None:
        if job.name in self._jobs:
            raise ValueError(f"job {job.name!r} is registered twice")
        self._jobs[job.name] = job

    def get(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise NotFoundError(f"no periodic job named {name!r}") from None

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def names(self) -> list[str]:
        return list(self._jobs)


class Scheduler:
    """Runs the registry's jobs in one daemon thread of this process (the broker-less deployment)."""

    def __init__(
        self,
        jobs: JobRegistry,
        services: Services,
        *,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 0.25,
    ) -> None:
        self.jobs = jobs
        self.services = services
        self.clock = clock
        self.tick = tick
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs: dict[str, int] = {}  # job name -> completed runs (for health and tests)

    def run_pending(self) -> list[str]:
        """Run every job that is due (all of them on the first call); the names that ran."""
        now = self.clock()
        ran = []
        for job in self.jobs:
            if self._due.get(job.name, now) > now:
                continue
            try:
                job.run(self.services)
            except Exception:  # logged; the job runs again at its next turn
                log.exception("periodic job %s failed", job.name)
            self.runs[job.name] = self.runs.get(job.name, 0) + 1
            self._due[job.name] = self.clock() + job.every
            ran.append(job.name)
        return ran

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_pending()
            self._stop.wait(self.tick)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="socflow-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
