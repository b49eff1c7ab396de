"""One composition per process: everything a process needs, built once from settings, passed down.

``socflow.wiring.build_services(settings)`` builds it (the composition root is the only platform module that
may import ``tools``, ``workflows`` and ``workers``); this module only says what it holds:

- the database (``engine``, session ``factory``), the workflow ``registry``;
- the run dependencies ``deps`` (the model client, built once and loaded lazily on its first call, so one
  process loads the model once; the SIEM backend; the ATT&CK catalog; the evidence providers; the policy;
  the clock), shared by every run of the process;
- the ``runner`` over them, the ``dispatcher`` that hands queued runs to whatever advances them (Celery with
  a broker; one background thread of this process without), the ``ingest`` service;
- the periodic ``jobs`` and the ``sweeper`` (``socflow.jobs``).

The API (``create_app(services=...)``), the Celery tasks (one ``Services`` per worker process, built after
the fork), the CLI commands and the eval/bench harnesses each build one and pass it down; tests build their
own with their own model or SIEM (``build_services(settings, model=ScriptedModel(...))``), never by patching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from socflow.dispatch import Dispatcher
from socflow.ingest import IngestService
from socflow.jobs import JobRegistry
from socflow.model.base import ModelClient
from socflow.registry import WorkflowRegistry
from socflow.runner import Runner
from socflow.sdk import Deps
from socflow.settings import Settings

log = logging.getLogger(__name__)


class Sweeper(Protocol):
    """Finds runs left behind (queued too long, running past their lease) and hands them on again."""

    def sweep_once(self) -> object: ...


@dataclass(eq=False)
class Services:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    registry: WorkflowRegistry
    deps: Deps
    runner: Runner
    dispatcher: Dispatcher
    ingest: IngestService
    jobs: JobRegistry
    sweeper: Sweeper
    closed: bool = field(default=False, init=False)

    @property
    def model(self) -> ModelClient | None:
        return self.deps.model

    def close(self) -> None:
        """Stop the dispatcher, the model's batching thread and the SIEM client; dispose of the engine."""
        if self.closed:
            return
        self.closed = True
        for what, part in (
            ("dispatcher", self.dispatcher),
            ("model", self.deps.model),
            ("siem", self.deps.siem),
        ):
            close = getattr(part, "shutdown", None) or getattr(part, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:  # closing is best effort: the process is going away
                log.warning("closing the %s failed", what, exc_info=True)
        self.engine.dispose()
