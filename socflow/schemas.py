"""Pydantic schemas for what crosses a boundary: the generic alert format and ingest results.

Alert fields are attacker-controlled text: every string is bounded, control characters are refused in
identifiers, and the raw payload is size-checked but kept as is.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from socflow.enums import Severity

MAX_FIELD_BYTES = 64 * 1024
MAX_RAW_BYTES = 256 * 1024
MAX_LIST_ITEMS = 500
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

ShortText = Annotated[str, Field(min_length=1, max_length=500)]
EntityValue = Annotated[str, Field(min_length=1, max_length=2048)]


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


class Rule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=500)
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)


class Entities(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hosts: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    users: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    ips: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    hashes: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    domains: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    urls: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    processes: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    emails: list[EntityValue] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)

    @field_validator("*", mode="after")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for v in values:
            v = _CONTROL.sub("", v).strip()
            if v:
                seen.setdefault(v, None)
        return list(seen)


class AlertIn(BaseModel):
    """The design's generic alert format (what ``POST /api/v1/alerts`` and ``socflow ingest`` accept)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: Annotated[str, Field(min_length=1, max_length=200)]
    source_ref: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    title: ShortText
    severity: Severity
    timestamp: datetime | None = None
    description: str | None = None
    rule: Rule = Field(default_factory=Rule)
    entities: Entities = Field(default_factory=Entities)
    raw: dict[str, Any] | None = None

    @field_validator("source", "source_ref")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("description")
    @classmethod
    def _bounded_text(cls, value: str | None) -> str | None:
        if value is not None and _utf8_len(value) > MAX_FIELD_BYTES:
            raise ValueError(f"longer than {MAX_FIELD_BYTES} bytes")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            utc = value.astimezone(UTC)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not (MIN_TIMESTAMP <= utc <= MAX_TIMESTAMP):
            raise ValueError(f"timestamp outside {MIN_TIMESTAMP:%Y-%m-%d} .. {MAX_TIMESTAMP:%Y-%m-%d} (UTC)")
        return utc

    @field_validator("raw")
    @classmethod
    def _bounded_raw(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_RAW_BYTES:
            raise ValueError(f"raw payload larger than {MAX_RAW_BYTES} bytes")
        return value


class IngestItem(BaseModel):
    """What happened to one submitted alert."""

    index: int
    line: int | None = None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None
    field: str | None = None
    alert_id: int | None = None
    case_id: int | None = None


class IngestReport(BaseModel):
    items: list[IngestItem] = Field(default_factory=list)
    runs_queued: list[str] = Field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for i in self.items if i.status == "accepted")

    @property
    def duplicates(self) -> int:
        return sum(1 for i in self.items if i.status == "duplicate")

    @property
    def rejected(self) -> int:
        return sum(1 for i in self.items if i.status == "rejected")


def now_utc() -> datetime:
    return datetime.now(UTC)


class EvidenceRecord(BaseModel):
    """One item a tool returned, to be stored as citable evidence (``evidence_id`` is stable)."""

    evidence_id: str = Field(min_length=1, max_length=80)
    kind: str = Field(max_length=32)
    backend: str | None = Field(default=None, max_length=32)
    source_event_id: str | None = Field(default=None, max_length=200)
    observed_at: datetime | None = None
    summary: str = Field(max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict)


class TechniqueRecord(BaseModel):
    """A validated ATT&CK technique for a case: name and tactics come from the catalog, never the model."""

    technique_id: str = Field(pattern=r"^T\d{4}(\.\d{3})?$")
    name: str = Field(max_length=300)
    tactics: list[str] = Field(default_factory=list)
    source: str = Field(max_length=32)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    evidence_ids: list[str] = Field(default_factory=list)
