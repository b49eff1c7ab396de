"""What one worker process holds: its runner (deps, model) built lazily, after any fork, and kept.

A prefork child inherits nothing built in the parent: ``reset()`` runs on ``worker_process_init`` and the
runner is built on the first task. A model-holding worker runs one process per GPU with a thread pool, so
its concurrent runs share one loaded model (and its batching engine); on CPU the model's thread count is
set once, before the model loads.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from socflow import wiring
from socflow.checkpoints import prepare_checkpoints
from socflow.db import make_engine, session_factory
from socflow.runner import Runner
from socflow.settings import Settings

log = logging.getLogger(__name__)

RunnerFactory = Callable[[Settings], Runner]

_CPU_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_runner(settings: Settings) -> Runner:
    """The runner from settings; the in-process model batches the calls of concurrent runs."""
    factory = session_factory(make_engine(settings.database.url))
    deps = wiring.build_deps(settings, factory=factory)
    model = deps.model
    if model is not None and getattr(model, "backend", None) == "transformers":
        model.batching = True  # type: ignore[attr-defined]
    return wiring.build_runner(settings, deps=deps)


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
    """The per-process runner of a worker (thread-safe; rebuilt after a fork)."""

    def __init__(self, settings: Settings, runner_factory: RunnerFactory = default_runner) -> None:
        self.settings = settings
        self.runner_factory = runner_factory
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._pid = os.getpid()

    def runner(self) -> Runner:
        with self._lock:
            if self._runner is None or self._pid != os.getpid():
                self._pid = os.getpid()
                prepare_checkpoints(self.settings.database.url)
                self._runner = self.runner_factory(self.settings)
                log.info("worker process %s built its runner", self._pid)
            return self._runner

    def reset(self) -> None:
        """Forget what a parent process built (``worker_process_init``)."""
        self._lock = threading.Lock()
        self._runner = None
        self._pid = os.getpid()
