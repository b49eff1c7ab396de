"""The ingest service of every door: the API, ``socflow ingest``, ``socflow connector run``,
``socflow siem detect --ingest`` and the Celery ingest task all build theirs with :func:`door_ingest`.

What each door gets is the same: storm grouping and one queued run per new case (``wiring.ingest_options``),
and every queued run handed to a dispatcher *after* the ingest transaction commits:

- a broker is configured (``SOCFLOW_BROKER__URL``): the Celery dispatcher sends each run to its queue, so
  workers start triage at once (a failed send leaves the run queued for the sweeper);
- no broker, a long-lived door (the API, a ``--follow`` connector): a background thread in this process
  advances the runs;
- no broker, a one-shot door (``socflow ingest``, ``connector run --once``): runs stay queued and the
  command says so; ``socflow runs process`` or the sweeper advances them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from socflow import wiring
from socflow.db import make_engine, session_factory
from socflow.dispatch import Dispatcher, NullDispatcher
from socflow.ingest import IngestService
from socflow.registry import WorkflowRegistry
from socflow.runner import Runner
from socflow.settings import Settings


def door_dispatcher(
    settings: Settings,
    *,
    factory: sessionmaker[Session],
    registry: WorkflowRegistry,
    long_lived: bool,
) -> Dispatcher:
    """Who advances the runs a door queues (see the module docstring)."""
    if not settings.broker.url and not long_lived:
        return NullDispatcher()
    runner = wiring.build_runner(settings, wiring.build_deps(settings, factory=factory), registry)
    return wiring.build_dispatcher(settings, factory=factory, registry=registry, runner=runner)


def _once(build: Callable[[], Runner]) -> Callable[[], Runner]:
    built: list[Runner] = []

    def get() -> Runner:
        if not built:
            built.append(build())
        return built[0]

    return get


@dataclass
class Door:
    """A door's ingest service and the dispatcher it hands queued runs to."""

    service: IngestService
    dispatcher: Dispatcher

    @property
    def dispatches(self) -> bool:
        """Whether queued runs are handed to something that advances them now."""
        return not isinstance(self.dispatcher, NullDispatcher)

    def close(self) -> None:
        """Release the dispatcher (a Celery connection, a thread pool)."""
        shutdown = getattr(self.dispatcher, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def __enter__(self) -> Door:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def door_ingest(
    settings: Settings,
    *,
    factory: sessionmaker[Session] | None = None,
    registry: WorkflowRegistry | None = None,
    dispatcher: Dispatcher | None = None,
    long_lived: bool = False,
    **overrides: Any,
) -> Door:
    """The one ingest service of every door: grouping, run queueing, dispatch after commit.

    ``dispatcher`` defaults to :func:`door_dispatcher`. ``overrides`` replace ``wiring.ingest_options``
    entries (tests).
    """
    factory = factory or session_factory(make_engine(settings.database.url))
    registry = registry or wiring.build_registry(settings)
    dispatcher = dispatcher or door_dispatcher(
        settings, factory=factory, registry=registry, long_lived=long_lived
    )
    options = wiring.ingest_options(settings, registry) | overrides
    return Door(IngestService(factory, on_run_queued=dispatcher.submit, **options), dispatcher)
