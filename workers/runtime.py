"""What one worker process holds: its ``Services`` (runner, model, SIEM, ...) built lazily, after any fork,
and kept.

A prefork child inherits nothing built in the parent: ``reset()`` runs on ``worker_process_init`` and the
services are built on the first task. A model-holding worker runs one process per GPU with a thread pool, so
its concurrent runs share one loaded model (and its batching engine); on CPU the model's thread count is
set once, before the model loads. ``workers`` never imports ``socflow.wiring``: whoever starts a worker
passes the builder (``socflow worker`` passes ``socflow.wiring.build_services``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from socflow.checkpoints import prepare_checkpoints
from socflow.runner import Runner
from socflow.services import Services
from socflow.settings import Settings

log = logging.getLogger(__name__)

ServicesFactory = Callable[[Settings], Services]

_CPU_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_cpu_threads(threads: int) -> None:
    """The model's CPU threads: environment for a torch not imported yet, ``set_num_threads`` for one that is.

    torch is never imported here (only the model runtime imports it); it reads these variables when it
    loads, lazily, on the first model call.
    """
    for name in _CPU_THREAD_VARS:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class WorkerRuntime:
    """The per-process services of a worker (thread-safe; rebuilt after a fork)."""

    def __init__(self, settings: Settings, build: ServicesFactory) -> None:
        self.settings = settings
        self.build = build
        self._lock = threading.Lock()
        self._services: Services | None = None
        self._pid = os.getpid()

    def services(self) -> Services:
        with self._lock:
            if self._services is None or self._pid != os.getpid():
                self._pid = os.getpid()
                prepare_checkpoints(self.settings.database.url)
                self._services = self.build(self.settings)
                log.info("worker process %s built its services", self._pid)
            return self._services

    def runner(self) -> Runner:
        return self.services().runner

    def reset(self) -> None:
        """Forget what a parent process built (``worker_process_init``)."""
        self._lock = threading.Lock()
        self._services = None
        self._pid = os.getpid()
