"""The composition root: the only platform module that imports ``tools``, ``workflows`` and ``workers``.

``build_services(settings)`` turns settings into the process's one ``socflow.services.Services`` (database,
model client, SIEM, ATT&CK catalog, evidence providers, workflow registry, runner, dispatcher, periodic
jobs); the API, the CLI, the Celery workers and the eval/bench harnesses each build one and pass it down.
It also exposes the tools' and workers' command-line groups to the CLI. ``workers`` never imports this
module (import-linter): the worker CLI and the Celery app receive ``build_services`` as an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from sqlalchemy.orm import Session, sessionmaker

from socflow.actions.catalog import Catalog
from socflow.calibration import Calibration, load_calibration
from socflow.db import make_engine, session_factory
from socflow.dispatch import Dispatcher, InlineDispatcher, NullDispatcher, ThreadDispatcher
from socflow.errors import SiemError
from socflow.evidence import EvidenceProvider
from socflow.grouping import KeyGrouper
from socflow.ingest import IngestService
from socflow.jobs import Job, JobRegistry
from socflow.model.base import Message, ModelClient
from socflow.model.factory import build_model_client
from socflow.model.recorder import ModelCallRecorder
from socflow.normalize import make_normalizer
from socflow.notify import notify_pass
from socflow.outbox import deliver_outbox
from socflow.policy import Policy
from socflow.registry import WorkflowRegistry, discover
from socflow.runner import Runner
from socflow.runqueue import RunQueue
from socflow.schemas import now_utc
from socflow.sdk import Deps
from socflow.services import Services, Sweeper
from socflow.settings import IntelSettings, Settings, SiemSettings
from socflow.sweep import LocalSweeper

if TYPE_CHECKING:
    from tools.attack.catalog import AttackCatalog
    from tools.intel.misp import MispProvider
    from tools.siem.backend import SiemBackend

log = logging.getLogger(__name__)


class _Unset:
    """The default of an argument not given (``None`` is a value: no model, no SIEM)."""


_UNSET = _Unset()


def cli_groups() -> list[tuple[str, typer.Typer, str]]:
    """Command groups contributed by tools and workers: (name, app, help)."""
    from tools.attack.cli import app as attack_app
    from tools.intel.cli import app as intel_app
    from tools.siem.cli import app as siem_app
    from workers.cli import make_worker_cli

    return [
        ("attack", attack_app, "MITRE ATT&CK: catalog info, lookup, text-to-technique mapping."),
        ("siem", siem_app, "The SIEM: load logs, hunt with Sigma, detect alerts, query events."),
        ("intel", intel_app, "Threat intel: load STIX/MISP/CSV indicator files, list, match values."),
        (
            "worker",
            make_worker_cli(build_services, build_jobs),
            "Celery workers: start one (--queues, --beat), status.",
        ),
    ]


def build_siem(settings: SiemSettings) -> SiemBackend:
    """The configured SIEM backend (``tools.siem.backend.build_siem``), one per thread of this process.

    The embedded store is opened only once it exists (``socflow siem load`` creates it): until then a
    lookup raises ``SiemError`` (triage gathers no SIEM evidence) instead of leaving an empty file in the
    working directory; a store loaded while the process runs is used from then on.
    """
    from tools.siem.backend import build_siem as build_backend
    from tools.siem.models import BackendKind
    from tools.siem.shared import PerThreadSiem

    def build() -> SiemBackend:
        if settings.backend == "embedded" and not Path(settings.path).exists():
            raise SiemError(f"the embedded SIEM store {settings.path} does not exist yet (socflow siem load)")
        return build_backend(settings)

    return PerThreadSiem(build, BackendKind(settings.backend))


def build_evidence_providers(
    siem: SiemBackend | None,
    settings: SiemSettings | None = None,
    *,
    factory: sessionmaker[Session] | None = None,
    intel: IntelSettings | None = None,
) -> tuple[EvidenceProvider, ...]:
    """The evidence providers of ``gather_evidence`` steps, in order: the SIEM lookup first, then (with the
    embedded store) the detections the rule pack raised on the case's hosts and users, then (with a
    database and ``intel.enabled``) the threat-intel matches of the case's observables."""
    from tools.siem.evidence import SiemEvidenceProvider
    from tools.siem.related import RelatedDetections

    providers: list[EvidenceProvider] = [SiemEvidenceProvider(siem)] if siem is not None else []
    if settings is not None and settings.backend == "embedded":
        providers.append(RelatedDetections(Path(settings.path), rule_titles()))
    if factory is not None and intel is not None and intel.enabled:
        from tools.intel.evidence import IntelEvidence

        providers.append(IntelEvidence(factory, misp=build_misp(intel)))
    return tuple(providers)


def build_misp(settings: IntelSettings) -> MispProvider | None:
    """The MISP provider (``tools.intel.misp.MispProvider``) when a URL and an API key are configured."""
    key = settings.misp_api_key.get_secret_value()
    if not settings.misp_url or not key:
        return None
    from tools.intel.misp import MispConfig, MispProvider

    return MispProvider(
        MispConfig(
            url=settings.misp_url,
            api_key=key,
            verify=settings.misp_verify,
            ca_bundle=settings.misp_ca_bundle,
            timeout=settings.misp_timeout,
            cache_ttl_seconds=settings.misp_cache_ttl_seconds,
            max_requests_per_minute=settings.misp_max_requests_per_minute,
        )
    )


@lru_cache(maxsize=1)
def rule_titles() -> dict[str, Any]:
    """Titles and levels of the shipped rule pack, by rule id (read once per process)."""
    from tools.siem.pack import SHIPPED_PACK, read_pack_rules
    from tools.siem.related import RuleInfo

    try:
        rules = read_pack_rules(SHIPPED_PACK)
    except (OSError, ValueError):
        return {}
    return {r.rule_id: RuleInfo(title=r.title, level=r.level, tags=tuple(r.tags)) for r in rules}


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


def build_attack_catalog() -> AttackCatalog:
    from tools.attack import load_catalog

    return load_catalog()


def build_registry(settings: Settings) -> WorkflowRegistry:
    return discover(settings.workflows.paths)


def build_model(
    settings: Settings, factory: sessionmaker[Session], *, batching: bool | None = None
) -> ModelClient | None:
    """The configured model client (nothing loads yet: the transformers model loads on its first call)."""
    if settings.model.backend == "none":
        return None
    return build_model_client(settings.model, ModelCallRecorder(factory), batching=batching)


ModelOption = ModelClient | None | Callable[[ModelCallRecorder], ModelClient | None]


def build_deps(
    settings: Settings,
    *,
    factory: sessionmaker[Session],
    model: ModelOption | _Unset = _UNSET,
    siem: SiemBackend | _Unset | None = _UNSET,
    batching: bool | None = None,
) -> Deps:
    """Run dependencies from settings. ``model`` and ``siem`` given are used as they are (tests); ``model``
    may also be a function of the ``model_calls`` recorder on ``factory`` (``lambda rec: ScriptedModel(rules,
    recorder=rec)``)."""
    the_siem = build_siem(settings.siem) if isinstance(siem, _Unset) else siem
    client: ModelClient | None
    if isinstance(model, _Unset):
        client = build_model(settings, factory, batching=batching)
    elif callable(model):
        client = model(ModelCallRecorder(factory))
    else:
        client = model
    return Deps(
        factory=factory,
        model=client,
        siem=the_siem,
        attack=build_attack_catalog(),
        policy=Policy.load(settings.policy.file),
        clock=now_utc,
        evidence=build_evidence_providers(the_siem, settings.siem, factory=factory, intel=settings.intel),
        calibration=build_calibration(settings, client),
        actions=Catalog.load(settings.actions.file),
    )


def build_calibration(settings: Settings, model: ModelClient | None) -> Calibration | None:
    """The configured calibration when it was fitted for the active model; None (and a warning) otherwise.
    A file that is not a calibration fails the start: a wrong confidence is worse than none."""
    path = settings.model.calibration
    if path is None or model is None:
        return None
    calibration = load_calibration(path)
    if calibration.model != model.model_id:
        log.warning(
            "calibration %s was fitted for model %r, not the active %r: confidences stay uncalibrated",
            path,
            calibration.model,
            model.model_id,
        )
        return None
    return calibration


def ingest_options(settings: Settings, registry: WorkflowRegistry | None = None) -> dict[str, Any]:
    """How every door ingests: storm grouping from settings, runs queued by the workflow specs' triggers."""
    registry = registry or build_registry(settings)
    return {
        "grouper": KeyGrouper(settings.grouping.key_fields, settings.grouping.window_seconds),
        "queue": RunQueue(registry, reassess_after_alerts=settings.grouping.reassess_after_alerts),
        "reassess_window": timedelta(seconds=settings.grouping.window_seconds),
        "normalizer": make_normalizer(
            fmt=settings.ingest.format, field_map=settings.ingest.field_map or None
        ),
    }


def build_runner(settings: Settings, deps: Deps, registry: WorkflowRegistry) -> Runner:
    return Runner(
        registry=registry,
        deps=deps,
        lease_seconds=settings.worker.run_lease_seconds,
        max_attempts=settings.worker.max_attempts,
        node_retries=settings.worker.node_retries,
        retry_backoff_seconds=settings.worker.retry_backoff_seconds,
    )


def build_jobs(settings: Settings) -> JobRegistry:
    """The periodic jobs of this deployment (Celery beat with a broker, ``jobs.Scheduler`` without)."""
    jobs = [
        Job(
            "sweep",
            settings.worker.sweep_interval_seconds,
            lambda svc: svc.sweeper.sweep_once(),
            "hand on again the runs left queued or running past their lease",
        ),
        Job(
            "deliver_outbox",
            settings.worker.outbox_interval_seconds,
            lambda svc: deliver_outbox(svc.settings, factory=svc.factory),
            "deliver pending write-back rows (retries with backoff; nothing lost while a target is down)",
        ),
    ]
    if settings.notify.enabled:
        jobs.append(
            Job(
                "notify",
                settings.notify.interval_seconds,
                lambda svc: notify_pass(svc.settings, factory=svc.factory),
                "outbox rows for escalations, assignments, critical cases and SLA breaches (notifications)",
            )
        )
    if settings.detection.schedule:
        jobs.append(
            Job(
                "detect",
                settings.detection.interval_seconds,
                detect_job,
                "run the enabled Sigma rules over events loaded since the cursor; ingest their alerts",
            )
        )
    return JobRegistry(jobs)


def detect_job(svc: Services) -> int:
    """One streaming-detection pass (``SOCFLOW_DETECTION__SCHEDULE=true``): alerts through the process's
    ingest service, their runs handed to its dispatcher after the commit."""
    from tools.siem.detection import run_detection_pass

    def sink(alerts: list[Any]) -> None:
        text = "\n".join(a.model_dump_json(exclude_none=True) for a in alerts)
        report = svc.ingest.ingest_text(text, actor="siem:detect")
        for run_id in report.runs_queued:
            svc.dispatcher.submit(run_id)

    return run_detection_pass(svc.settings, sink, factory=svc.factory)


def build_dispatcher(
    settings: Settings, *, factory: sessionmaker[Session], registry: WorkflowRegistry, runner: Runner
) -> Dispatcher:
    """Celery when a broker is configured; otherwise a background thread of this process on ``runner``."""
    if settings.broker.url:
        from workers.dispatch import CeleryDispatcher

        return CeleryDispatcher(settings, factory=factory, registry=registry)
    return ThreadDispatcher(runner)


def build_services(
    settings: Settings,
    *,
    model: ModelOption | _Unset = _UNSET,
    siem: SiemBackend | _Unset | None = _UNSET,
    dispatcher: Dispatcher | Literal["inline", "null"] | None = None,
    batching: bool | None = None,
    sweep_grace_seconds: float | None = None,
) -> Services:
    """The process's composition from settings (see ``socflow.services``), built once and passed down.

    ``dispatcher``: default Celery when ``SOCFLOW_BROKER__URL`` is set, else a background thread of this
    process; ``"inline"`` advances in the caller's thread (CLI), ``"null"`` leaves runs queued (tests).
    ``batching``: share forward passes between this process's concurrent runs (a model-holding worker).
    """
    engine = make_engine(settings.database.url)
    factory = session_factory(engine)
    registry = build_registry(settings)
    deps = build_deps(settings, factory=factory, model=model, siem=siem, batching=batching)
    runner = build_runner(settings, deps, registry)
    grace = settings.worker.sweep_grace_seconds if sweep_grace_seconds is None else sweep_grace_seconds
    sweeper: Sweeper
    chosen: Dispatcher
    if dispatcher == "inline":
        chosen = InlineDispatcher(runner)
    elif dispatcher == "null":
        chosen = NullDispatcher()
    elif dispatcher is not None:
        chosen = dispatcher
    elif settings.broker.url:
        from workers.dispatch import CeleryDispatcher

        chosen = CeleryDispatcher(settings, factory=factory, registry=registry)
    else:
        chosen = ThreadDispatcher(runner)
    if settings.broker.url and not isinstance(chosen, InlineDispatcher):
        from workers.dispatch import CeleryDispatcher
        from workers.sweeper import Sweeper as CelerySweeper

        sender = (
            chosen
            if isinstance(chosen, CeleryDispatcher)
            else CeleryDispatcher(settings, factory=factory, registry=registry)
        )
        sweeper = CelerySweeper.for_dispatcher(sender, grace_seconds=grace)
    else:
        sweeper = LocalSweeper(factory, chosen.submit, grace_seconds=grace)
    return Services(
        settings=settings,
        engine=engine,
        factory=factory,
        registry=registry,
        deps=deps,
        runner=runner,
        dispatcher=chosen,
        ingest=IngestService(factory, **ingest_options(settings, registry)),
        jobs=build_jobs(settings),
        sweeper=sweeper,
    )


def cli_services(ctx: typer.Context, settings: Settings, **options: Any) -> Services:
    """The services of a CLI command: built by the builder the caller passed as the command's context
    object (``CliRunner().invoke(app, args, obj=builder)``: a test's composition), else ``build_services``."""
    build = ctx.obj if callable(ctx.obj) else build_services
    services = build(settings, **options)
    if not isinstance(services, Services):
        raise TypeError("the CLI's context object must build socflow.services.Services")
    return services


def eval_tasks() -> dict[str, Any]:
    """Evaluation tasks that need the tools: attack-text and attack-logs (``socflow eval``)."""
    from tools.evaluation import TASKS

    return dict(TASKS)


def triage_scoring() -> tuple[Callable[[str, str, str], list[Message]], tuple[str, ...]]:
    """alert_triage's label-scoring prompt for a one-alert case without SIEM evidence, and its labels
    (``socflow eval triage --fit-calibration``)."""
    from workflows.alert_triage.prompts import VERDICT_LABELS, case_block, score_prompt

    def prompt(title: str, severity: str, description: str) -> list[Message]:
        line = f"{title} ({severity}): {description[:300]}"
        return score_prompt(case_block(title, severity, [line], []))

    return prompt, tuple(VERDICT_LABELS)


def siem_throughput(workdir: Path, events: int) -> dict[str, float]:
    """Embedded-SIEM ingest and query throughput on generated events (``socflow bench``)."""
    from tools.evaluation import siem_throughput as measure

    return measure(workdir, events)
