"""Dispatchers hand queued runs to whatever advances them; the run row in the database is the truth.

``InlineDispatcher`` advances at once in the caller's thread (CLI, tests); ``ThreadDispatcher`` advances
in a background thread (the embedded API, ``SOCFLOW_BROKER__URL`` empty); ``NullDispatcher`` leaves the
run queued for a worker or the sweeper. The Celery dispatcher lives in ``workers``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from socflow.runner import Runner

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def submit(self, run_id: str) -> None: ...


class NullDispatcher:
    def submit(self, run_id: str) -> None:
        return None


class InlineDispatcher:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def submit(self, run_id: str) -> None:
        self.runner.advance(run_id)


class ThreadDispatcher:
    """One background thread advancing runs in submission order (the model runs one pass at a time)."""

    def __init__(self, runner: Callable[[], Runner], *, workers: int = 1) -> None:
        self._runner = runner
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socflow-run")

    def submit(self, run_id: str) -> None:
        self._pool.submit(self._advance, run_id)

    def _advance(self, run_id: str) -> None:
        try:
            self._runner().advance(run_id)
        except Exception:  # the run stays queued or leased; the sweeper picks it up again
            log.exception("advancing run %s failed", run_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
