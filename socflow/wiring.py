"""The composition root: the only platform module that imports ``tools``, ``workflows`` and ``workers``.

It turns settings into run dependencies (model, SIEM, ATT&CK catalog, policy, clock), builds the runner,
and exposes the tools' command-line groups to the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.dispatch import Dispatcher, ThreadDispatcher
from socflow.errors import ConfigError
from socflow.grouping import KeyGrouper
from socflow.model.base import ModelClient
from socflow.model.factory import build_model_client
from socflow.model.recorder import ModelCallRecorder
from socflow.normalize import make_normalizer
from socflow.policy import Policy
from socflow.registry import WorkflowRegistry, discover
from socflow.runner import Runner, RunQueue
from socflow.schemas import now_utc
from socflow.sdk import Deps
from socflow.settings import Settings, SiemSettings

_UNSET: Any = object()


def cli_groups() -> list[tuple[str, typer.Typer, str]]:
    """Command groups contributed by tools and workers: (name, app, help)."""
    from tools.attack.cli import app as attack_app
    from tools.siem.cli import app as siem_app
    from workers.cli import app as worker_app

    return [
        ("attack", attack_app, "MITRE ATT&CK: catalog info, lookup, text-to-technique mapping."),
        ("siem", siem_app, "The SIEM: load logs, hunt with Sigma, detect alerts, query events."),
        ("worker", worker_app, "Celery workers: start one (--queues, --beat), status."),
    ]


def cli_commands() -> list[tuple[str, Callable[..., None]]]:
    """Top-level commands contributed by workers: (name, function)."""
    from workers.cli import sweep

    return [("sweep", sweep)]


def build_siem(settings: SiemSettings) -> Any:
    """The configured SIEM backend, or None when the embedded store has not been created yet."""
    if settings.backend == "embedded":
        if not Path(settings.path).exists():
            return None
        from tools.siem.embedded import EmbeddedSiem

        return EmbeddedSiem(settings.path)
    raise ConfigError(f"SIEM backend {settings.backend!r} is not wired yet")


def detect_demo_alerts(settings: SiemSettings, events_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Load ``events_dir`` into the embedded SIEM (idempotent) and run the shipped Sigma rules over it.

    Returns the alerts in the generic format and a one-line summary.
    """
    from tools.siem.detect import DEFAULT_RULES_DIR, DetectReport, compile_rules, detect
    from tools.siem.embedded import EmbeddedSiem

    with EmbeddedSiem(settings.path) as siem:
        loaded = siem.load([events_dir])
        report = DetectReport()
        alerts = [
            a.model_dump(mode="json")
            for a in detect(siem, compile_rules([DEFAULT_RULES_DIR], report), report)
        ]
    summary = (
        f"SIEM {settings.path}: {loaded.loaded} new events ({loaded.duplicates} already loaded); "
        f"{report.rules_converted} Sigma rules, {report.rules_fired} fired, {len(alerts)} alerts"
    )
    return alerts, summary


def build_attack_catalog() -> Any:
    from tools.attack import load_catalog

    return load_catalog()


def build_registry(settings: Settings) -> WorkflowRegistry:
    return discover(settings.workflows.paths)


def build_deps(
    settings: Settings,
    *,
    factory: sessionmaker[Session] | None = None,
    model: ModelClient | None = _UNSET,
    siem: Any = _UNSET,
) -> Deps:
    """Run dependencies from settings; tests pass their own model (e.g. a ScriptedModel) or SIEM."""
    factory = factory or session_factory(make_engine(settings.database.url))
    if model is _UNSET:
        model = (
            None
            if settings.model.backend == "none"
            else build_model_client(settings.model, ModelCallRecorder(factory))
        )
    return Deps(
        factory=factory,
        model=model,
        siem=build_siem(settings.siem) if siem is _UNSET else siem,
        attack=build_attack_catalog(),
        policy=Policy.load(settings.policy.file),
        clock=now_utc,
    )


def ingest_options(settings: Settings, registry: WorkflowRegistry | None = None) -> dict[str, Any]:
    """How every door ingests: storm grouping from settings, one queued alert_triage run per new case."""
    registry = registry or build_registry(settings)
    return {
        "grouper": KeyGrouper(settings.grouping.key_fields, settings.grouping.window_seconds),
        "queue": RunQueue(registry),
        "reassess_window": timedelta(seconds=settings.grouping.window_seconds),
        "normalizer": make_normalizer(
            fmt=settings.ingest.format, field_map=settings.ingest.field_map or None
        ),
    }


def build_dispatcher(settings: Settings, runner: Callable[[], Runner]) -> Dispatcher:
    """Celery when a broker is configured; otherwise a background thread in this process."""
    if settings.broker.url:
        from workers.dispatch import CeleryDispatcher

        return CeleryDispatcher(settings)
    return ThreadDispatcher(runner)


def build_runner(
    settings: Settings, *, deps: Deps | None = None, registry: WorkflowRegistry | None = None
) -> Runner:
    deps = deps or build_deps(settings)
    return Runner(
        db_url=settings.database.url,
        factory=deps.factory,
        registry=registry or build_registry(settings),
        deps=deps,
        lease_seconds=settings.worker.run_lease_seconds,
        max_attempts=settings.worker.max_attempts,
        node_retries=settings.worker.node_retries,
        retry_backoff_seconds=settings.worker.retry_backoff_seconds,
    )


def eval_tasks() -> dict[str, Any]:
    """Evaluation tasks that need the tools: attack-text and attack-logs (``socflow eval``)."""
    from tools.evaluation import TASKS

    return dict(TASKS)


def siem_throughput(workdir: Path, events: int) -> dict[str, float]:
    """Embedded-SIEM ingest and query throughput on generated events (``socflow bench``)."""
    from tools.evaluation import siem_throughput as measure

    return measure(workdir, events)
