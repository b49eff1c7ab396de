"""Detection to alerts: Sigma rules over the embedded store, emitted in socflow's generic alert format.

One alert per (rule, host): the matching events' ids, entities and the rule's ATT&CK tags. ``source_ref`` is a
hash of the rule id and the sorted matching event ids, so running detect twice over the same events gives the
same alerts (idempotent downstream).
"""

from __future__ import annotations

import json
import ntpath
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from socflow.errors import SiemError, SigmaConversionError
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import SiemEvent, SkipReason, stable_id
from tools.siem.sigma_rules import CompiledRule, compile_rule, iter_rule_files

ALERT_SOURCE = "socflow-sigma"
DEFAULT_RULES_DIR = Path(__file__).parent / "rules"
MAX_EVENTS_PER_ALERT = 50
#: socflow's ingest refuses ``raw`` over 256 KiB; matching events are included up to this budget.
MAX_RAW_EVENTS_BYTES = 160 * 1024
#: Event ids listed per alert (the source_ref covers all of them).
MAX_EVENT_IDS = 1000

Severity = Literal["informational", "low", "medium", "high", "critical"]
_LEVELS: dict[str, Severity] = {
    "informational": "informational",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    tags: list[str] = Field(default_factory=list)


class AlertEntities(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    ips: list[str] = Field(default_factory=list)
    hashes: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)
    processes: list[str] = Field(default_factory=list)


class GenericAlert(BaseModel):
    """The generic alert format (DESIGN.md), as emitted by ``siem detect``."""

    model_config = ConfigDict(extra="forbid")

    source: str
    source_ref: str | None = None
    title: str
    severity: Severity
    timestamp: str | None = None
    description: str | None = None
    rule: AlertRule
    entities: AlertEntities
    raw: dict[str, Any] = Field(default_factory=dict)


class DetectReport(BaseModel):
    rules_total: int = 0
    rules_converted: int = 0
    rules_fired: int = 0
    alerts: int = 0
    failed: list[SkipReason] = Field(default_factory=list)


def _hashes(raw: dict[str, Any]) -> list[str]:
    out: list[str] = []
    text = raw.get("Hashes") or raw.get("Hash")
    if isinstance(text, str):
        for part in text.split(","):
            _, _, value = part.partition("=")
            if value.strip():
                out.append(value.strip())
    return out


def _add(target: list[str], value: Any) -> None:
    if value not in (None, "", "-") and str(value) not in target:
        target.append(str(value))


def alert_for(rule: CompiledRule, events: list[SiemEvent]) -> GenericAlert:
    """One alert from a rule and the events it matched (all on one host)."""
    entities = AlertEntities()
    for event in events:
        _add(entities.hosts, event.host)
        _add(entities.users, event.user)
        _add(entities.ips, event.source_ip)
        _add(entities.ips, event.destination_ip)
        _add(entities.processes, event.process)
        parent = event.raw.get("ParentImage")
        if isinstance(parent, str) and parent:
            _add(entities.processes, ntpath.basename(parent))
        for value in _hashes(event.raw):
            _add(entities.hashes, value)
        _add(entities.domains, event.raw.get("QueryName"))
    event_ids = sorted(event.event_id for event in events)
    shown: list[dict[str, Any]] = []
    budget = MAX_RAW_EVENTS_BYTES
    for event in events[:MAX_EVENTS_PER_ALERT]:
        size = len(json.dumps(event.raw, default=str))
        if size > budget:
            break
        budget -= size
        shown.append(event.raw)
    return GenericAlert(
        source=ALERT_SOURCE,
        source_ref=f"sigma-{stable_id(rule.rule_id, *event_ids)}",
        title=rule.title,
        severity=_LEVELS.get(rule.level, "medium"),
        timestamp=events[0].timestamp,
        description=rule.description or None,
        rule=AlertRule(id=rule.rule_id, name=rule.title, tags=list(rule.tags)),
        entities=entities,
        raw={
            "rule_source": rule.source,
            "event_count": len(events),
            "event_ids": event_ids[:MAX_EVENT_IDS],
            "events": shown,
            "events_omitted": len(events) - len(shown),
        },
    )


def compile_rules(paths: Iterable[Path], report: DetectReport) -> list[CompiledRule]:
    compiled: list[CompiledRule] = []
    for directory in paths:
        for loaded in iter_rule_files(directory):
            report.rules_total += 1
            if loaded.rule is None:
                report.failed.append(SkipReason(source=str(loaded.path), reason=loaded.error or "?"))
                continue
            try:
                compiled.append(compile_rule(loaded.rule, source=str(loaded.path)))
            except SigmaConversionError as exc:
                report.failed.append(SkipReason(source=str(loaded.path), reason=str(exc)))
    report.rules_converted = len(compiled)
    return compiled


def detect(
    siem: EmbeddedSiem, rules: list[CompiledRule], report: DetectReport | None = None
) -> Iterator[GenericAlert]:
    """Run compiled rules over the store; yields one alert per rule and host, in rule order."""
    report = report if report is not None else DetectReport()
    for rule in rules:
        try:
            events = siem.run_compiled(rule)
        except SiemError as exc:
            report.failed.append(SkipReason(source=rule.source or rule.rule_id, reason=str(exc)))
            continue
        if not events:
            continue
        report.rules_fired += 1
        by_host: dict[str, list[SiemEvent]] = defaultdict(list)
        for event in events:
            by_host[(event.host or "").lower()].append(event)
        for host in sorted(by_host):
            report.alerts += 1
            yield alert_for(rule, by_host[host])
