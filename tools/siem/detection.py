"""Detection from settings: the active rule set and one streaming pass (the scheduled job).

``run_detection_pass(settings, sink)`` is the job: it opens the embedded store named by
``SOCFLOW_SIEM__PATH``, loads the enabled rules (pack + custom folders, filters from
``SOCFLOW_DETECTION__*``, overrides from the store), the YAML suppressions plus accepted tuning proposals
(when a session factory is given), runs one pass from the persisted cursor and returns the number of alerts
it handed to ``sink``. :func:`ingest_sink` turns an :class:`~socflow.ingest.IngestService` into a sink.

With a session factory, each pass then offers the tuning proposals of cases closed as false positive since
the last one (:func:`tools.siem.tuning.propose`, idempotent: one proposal per case and rule), so a case
closed as a false positive has its proposal within one job interval, without ``siem tuning list``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from socflow.ingest import IngestService, parse_payload
from socflow.settings import DetectionSettings, Settings
from socflow.tables import SuppressionProposal
from tools.siem.detect import GenericAlert
from tools.siem.embedded import EmbeddedSiem
from tools.siem.pack import (
    CUSTOM_FOLDER,
    DEFAULT_FOLDERS,
    RuleFilter,
    RuleSet,
    active_pack_dir,
    load_rule_set,
)
from tools.siem.stream import AlertSink, DetectionState, PassReport, StreamDetector
from tools.siem.suppress import SuppressionConfig

DETECT_ACTOR = "socflow-detect"


def rule_filter(settings: DetectionSettings, overrides: dict[str, bool] | None = None) -> RuleFilter:
    folders = tuple(DEFAULT_FOLDERS) + (("rules-threat-hunting",) if settings.hunting else ())
    return RuleFilter(
        statuses=tuple(s.strip().lower() for s in settings.statuses),
        min_level=settings.min_level,
        folders=folders if CUSTOM_FOLDER in folders else (*folders, CUSTOM_FOLDER),
        overrides=dict(overrides or {}),
    )


def rule_set(settings: DetectionSettings, state: DetectionState | None = None) -> RuleSet:
    """The pack (updated one in ``pack_dir`` if present, else shipped) and custom folders, filtered."""
    return load_rule_set(
        pack_dir=active_pack_dir(settings.pack_dir),
        custom_dirs=[Path(p) for p in settings.rule_dirs],
        rule_filter=rule_filter(settings, state.overrides() if state else None),
        cache_path=settings.cache_path,
    )


def suppression_config(
    settings: DetectionSettings, factory: sessionmaker[Session] | None = None
) -> SuppressionConfig:
    config = SuppressionConfig.load(settings.suppressions)
    if factory is None:
        return config
    from tools.siem.tuning import accepted_suppressions

    return config.with_extra(accepted_suppressions(factory))


def ingest_sink(service: IngestService, actor: str = DETECT_ACTOR) -> AlertSink:
    """Alerts into socflow through the ingest service (idempotent on source + source_ref)."""

    def sink(alerts: list[GenericAlert]) -> None:
        text = "\n".join(a.model_dump_json(exclude_none=True) for a in alerts)
        service.ingest(parse_payload(text), actor=actor)

    return sink


def detection_pass(
    settings: Settings,
    sink: AlertSink,
    *,
    factory: sessionmaker[Session] | None = None,
    max_events: int | None = None,
) -> PassReport:
    with EmbeddedSiem(settings.siem.path) as siem:
        state = DetectionState(siem)
        rules_set = rule_set(settings.detection, state)
        detector = StreamDetector(
            siem,
            rules_set.enabled(),
            suppression_config(settings.detection, factory),
            batch=settings.detection.batch_size,
        )
        report = detector.run_pass(sink, max_events=max_events)
    if factory is not None:
        report.proposals = len(offer_proposals(factory, rules_set))
    return report


def offer_proposals(factory: sessionmaker[Session], rules_set: RuleSet) -> list[SuppressionProposal]:
    """Pending proposals for pack alerts of cases closed as false positive that have none yet (audited)."""
    from tools.siem.tuning import propose

    fields = {r.rule_id: r.compiled.fields for r in rules_set.rules if r.compiled is not None}
    return propose(factory, lambda rule_id: fields.get(rule_id, ()))


def run_detection_pass(
    settings: Settings,
    sink: AlertSink,
    *,
    factory: sessionmaker[Session] | None = None,
    on_report: Callable[[PassReport], None] | None = None,
) -> int:
    """The scheduled job: one pass from the cursor; returns the number of alerts sent to ``sink``."""
    report = detection_pass(settings, sink, factory=factory)
    if on_report is not None:
        on_report(report)
    return report.alerts
