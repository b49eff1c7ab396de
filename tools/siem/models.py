"""Typed values of the SIEM tool: entity queries, events (with deterministic ids) and load reports."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from socflow.errors import InputError
from socflow.schemas import EvidenceRecord

#: ECS-style columns the embedded backend indexes; remote backends map the same names to their fields.
ECS_FIELDS: tuple[str, ...] = (
    "@timestamp",
    "host.name",
    "user.name",
    "source.ip",
    "destination.ip",
    "process.name",
    "process.command_line",
    "process.hash",
    "event.code",
    "winlog.channel",
    "event.provider",
)


class BackendKind(StrEnum):
    EMBEDDED = "embedded"
    OPENSEARCH = "opensearch"
    ELASTIC = "elastic"
    SPLUNK = "splunk"


class EvidenceKind(StrEnum):
    SIEM_EVENT = "siem_event"


def stable_id(*parts: str) -> str:
    """A deterministic hex id (sha256, 32 hex chars) of the given parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


def canonical_json(flat: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the stored form of a raw event, and the input of its id."""
    return json.dumps(flat, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_event_id(flat: dict[str, Any], canonical: str | None = None) -> str:
    """The id of a normalized event: a hash of its canonical JSON (identical events get one id)."""
    text = canonical if canonical is not None else canonical_json(flat)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EntityQuery(BaseModel):
    """Search by entities and a time window. Entity filters are ANDed; values match case-insensitively."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str | None = None
    user: str | None = None
    ip: str | None = None
    process: str | None = None
    hash: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> EntityQuery:
        if self.since and self.until and self.since > self.until:
            raise InputError("since is after until", field="since")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InputError("timestamp needs a time zone (e.g. 2025-01-01T00:00:00Z)", field=name)
        return self

    def is_empty(self) -> bool:
        return not any((self.host, self.user, self.ip, self.process, self.hash, self.since, self.until))


class SiemEvent(BaseModel):
    """One event from any backend: ECS-style entity fields plus the raw event (original field names)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    backend: BackendKind
    event_id: str = Field(description="The backend's id for the event (embedded: a content hash)")
    timestamp: str | None = Field(default=None, description="ISO 8601 UTC")
    host: str | None = None
    user: str | None = None
    source_ip: str | None = None
    destination_ip: str | None = None
    process: str | None = None
    command_line: str | None = None
    event_code: str | None = None
    channel: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        """Deterministic id: hash of backend + event id."""
        return stable_id(self.backend.value, self.event_id)

    def evidence_id(self, case_id: str) -> str:
        """Deterministic evidence id within one case: hash of case, backend and event id."""
        return stable_id(str(case_id), self.backend.value, self.event_id)

    def summary(self) -> str:
        parts = [
            f"EventID {self.event_code}" if self.event_code else "event",
            f"on {self.host}" if self.host else "",
            f"by {self.user}" if self.user else "",
            f"process {self.process}" if self.process else "",
            f"from {self.source_ip}" if self.source_ip else "",
        ]
        text = " ".join(p for p in parts if p)
        if self.command_line:
            text += f": {self.command_line[:200]}"
        return text

    def to_evidence(self, case_id: str) -> dict[str, Any]:
        """Payload for the lead's ``evidence`` table (one row per case and evidence id)."""
        return {
            "case_id": str(case_id),
            "evidence_id": self.evidence_id(case_id),
            "kind": EvidenceKind.SIEM_EVENT.value,
            "backend": self.backend.value,
            "source_event_id": self.event_id,
            "observed_at": self.timestamp,
            "summary": self.summary(),
            "data": self.model_dump(mode="json"),
        }

    def evidence_record(self, case_id: str) -> EvidenceRecord:
        """The same payload as socflow's :class:`~socflow.schemas.EvidenceRecord` (without ``case_id``)."""
        payload = self.to_evidence(case_id)
        payload.pop("case_id")
        return EvidenceRecord.model_validate(payload)


class SkipReason(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str = Field(description="file (and archive member / line / record) that was skipped")
    reason: str


class LoadReport(BaseModel):
    loaded: int = 0
    duplicates: int = 0
    files: int = 0
    skipped: list[SkipReason] = Field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def merge(self, other: LoadReport) -> None:
        self.loaded += other.loaded
        self.duplicates += other.duplicates
        self.files += other.files
        self.skipped.extend(other.skipped)
