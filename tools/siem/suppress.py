"""Suppression: per-rule allow-lists on field values, thresholds, and aggregation per host and rule.

Configured in YAML (``SOCFLOW_DETECTION__SUPPRESSIONS``)::

    suppressions:
      - id: sccm-client-powershell              # required, unique: recorded on every suppressed detection
        rule: 41025fd7-0466-4650-a813-574aaacbe7f4   # a rule id, or "*" for every rule
        reason: SCCM client runs these scripts  # required: why (audited)
        match:                                  # allow-list: all listed fields must match (any listed value)
          Image: ['C:\\Windows\\CCM\\CcmExec.exe']
          host.name: [WS-SCCM-01]               # ECS columns: host.name, user.name, source.ip ...
    thresholds:
      - rule: "*"
        min_events: 3                           # fire only with >= 3 matching events per host and window
        window_seconds: 600
    aggregation:
      window_seconds: 3600                      # one alert per host, rule and window

Matching is case-insensitive and exact (``*`` inside a value is a wildcard). Every suppressed detection is
kept in the SIEM store's ``detections`` table with status ``suppressed`` and the suppression id;
that is the audit trail, and ``siem rules list`` counts them per rule. Accepted tuning proposals are
added as suppressions with the same shape (``tools/siem/tuning.py``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from socflow.errors import InputError
from tools.siem.models import SiemEvent

MAX_VALUES = 1000
MAX_VALUE_CHARS = 2000


class Suppression(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    rule: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    match: dict[str, list[str]] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _bounded(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in value.items():
            if not values or len(values) > MAX_VALUES:
                raise ValueError(f"match.{name}: between 1 and {MAX_VALUES} values")
            if any(len(v) > MAX_VALUE_CHARS for v in values):
                raise ValueError(f"match.{name}: a value over {MAX_VALUE_CHARS} characters")
        return value

    def applies_to(self, rule_id: str) -> bool:
        return self.rule in ("*", rule_id)

    def matches(self, event: SiemEvent) -> bool:
        for name, allowed in self.match.items():
            actual = field_value(event, name)
            if actual is None:
                return False
            text = str(actual).lower()
            if not any(fnmatch.fnmatchcase(text, v.lower()) for v in allowed):
                return False
        return True


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = "*"
    min_events: int = Field(ge=1, le=1_000_000)
    window_seconds: int = Field(default=3600, ge=1)


class Aggregation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_seconds: int = Field(default=0, ge=0, description="0: one alert per detection pass")


class SuppressionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suppressions: list[Suppression] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    aggregation: Aggregation = Field(default_factory=Aggregation)

    @classmethod
    def load(cls, path: Path | None) -> SuppressionConfig:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            config = cls.model_validate(data)
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"suppressions file {path}: {exc}", field="suppressions") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"suppressions file {path}: {where}: {first['msg']}", field=where) from exc
        ids = [s.id for s in config.suppressions]
        if len(ids) != len(set(ids)):
            raise InputError(f"suppressions file {path}: suppression ids must be unique", field="id")
        return config

    def with_extra(self, extra: Iterable[Suppression]) -> SuppressionConfig:
        return SuppressionConfig(
            suppressions=[*self.suppressions, *extra],
            thresholds=self.thresholds,
            aggregation=self.aggregation,
        )

    def suppressed_by(self, rule_id: str, event: SiemEvent) -> str | None:
        for suppression in self.suppressions:
            if suppression.applies_to(rule_id) and suppression.matches(event):
                return suppression.id
        return None

    def threshold(self, rule_id: str) -> Threshold | None:
        exact = [t for t in self.thresholds if t.rule == rule_id]
        wildcard = [t for t in self.thresholds if t.rule == "*"]
        found = exact or wildcard
        return found[0] if found else None


_ECS_ATTRS = {
    "host.name": "host",
    "user.name": "user",
    "source.ip": "source_ip",
    "destination.ip": "destination_ip",
    "process.name": "process",
    "process.command_line": "command_line",
    "event.code": "event_code",
    "winlog.channel": "channel",
}


def field_value(event: SiemEvent, name: str) -> Any:
    """A raw event field (Sigma's names) or one of the ECS columns."""
    if name in _ECS_ATTRS:
        return getattr(event, _ECS_ATTRS[name])
    return event.raw.get(name)


@dataclass
class Suppressed:
    """What a pass suppressed, per suppression id (for reports)."""

    by_id: dict[str, int] = field(default_factory=dict)

    def add(self, suppression_id: str) -> None:
        self.by_id[suppression_id] = self.by_id.get(suppression_id, 0) + 1
