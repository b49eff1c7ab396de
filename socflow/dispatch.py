"""Dispatchers hand queued runs to whatever advances them; the run row in the database is the truth.

``InlineDispatcher`` advances at once in the caller's thread (CLI, tests); ``ThreadDispatcher`` advances
in a background thread (the embedded API, ``SOCFLOW_BROKER__URL`` empty); ``NullDispatcher`` leaves the
run queued for a worker or the sweeper. The Celery dispatcher lives in ``workers``.
"""

from __future__ import annotations

import logging
import threading
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
    """One background thread advancing runs in submission order with the process's one runner (so one
    model). A run already waiting in this dispatcher is not queued twice (the sweeper may submit it again)."""

    def __init__(self, runner: Runner, *, workers: int = 1) -> None:
        self.runner = runner
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socflow-run")
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def submit(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._pending:
                return
            self._pending.add(run_id)
        try:
            self._pool.submit(self._advance, run_id)
        except RuntimeError:  # shut down: the run stays queued for the next start's sweeper
            with self._lock:
                self._pending.discard(run_id)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _advance(self, run_id: str) -> None:
        try:
            self.runner.advance(run_id)
        except Exception:  # the run stays queued or leased; the sweeper picks it up again
            log.exception("advancing run %s failed", run_id)
        finally:
            with self._lock:
                self._pending.discard(run_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
