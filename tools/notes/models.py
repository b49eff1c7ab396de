"""Inputs and outputs of case-note drafting (pydantic), and the bounded schema the model fills in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from socflow.tables import AuditEvent
from tools.attack.mapper import MappedTechnique

# Printable ASCII with bounded quantifiers: constrained decoding always finishes (socflow.model.schema).
Sentence = Annotated[str, Field(pattern=r"^[ -~]{1,200}$")]
Bullet = Annotated[str, Field(pattern=r"^[ -~]{1,160}$")]


class NoteSections(BaseModel):
    """What the model writes. ATT&CK techniques and actions taken are rendered by code, not asked for."""

    summary: list[Sentence] = Field(max_length=3, description="what happened; each sentence cites [E#]")
    impacted: list[Bullet] = Field(max_length=4, description="impacted assets and users; each cites [E#]")
    timeline: list[Bullet] = Field(max_length=5, description="time-ordered events; each cites [E#]")
    next_steps: list[Bullet] = Field(max_length=4, description="recommended next steps for the analyst")


FACTUAL_SECTIONS: tuple[str, ...] = ("summary", "impacted", "timeline")
MODEL_SECTIONS: tuple[str, ...] = (*FACTUAL_SECTIONS, "next_steps")


class ActionKind(StrEnum):
    ISOLATE = "isolate"
    QUARANTINE = "quarantine"
    BLOCK = "block"
    DISABLE = "disable"
    RESET = "reset"
    REMOVE = "remove"
    CONTAIN = "contain"


_ACTION_STEMS: dict[str, ActionKind] = {
    "isolat": ActionKind.ISOLATE,
    "quarantin": ActionKind.QUARANTINE,
    "block": ActionKind.BLOCK,
    "disabl": ActionKind.DISABLE,
    "reset": ActionKind.RESET,
    "remov": ActionKind.REMOVE,
    "delet": ActionKind.REMOVE,
    "contain": ActionKind.CONTAIN,
}


class RecordedAction(BaseModel):
    """A response action from the audit log (only these may appear under "Actions taken")."""

    action: str = Field(max_length=100, description="the recorded action, e.g. 'isolate_host'")
    target: str = Field(default="", max_length=300)
    actor: str = Field(default="", max_length=200)
    at: datetime | None = None
    audit_event_id: str | None = Field(default=None, max_length=100)

    @property
    def kind(self) -> ActionKind | None:
        """Which checked verb family the action belongs to (None for other actions, e.g. 'notify')."""
        lowered = self.action.lower()
        return next((kind for stem, kind in _ACTION_STEMS.items() if stem in lowered), None)


class EvidenceItem(BaseModel):
    """One piece of case evidence; drafting numbers them ``[E1]..[En]`` in the order given."""

    evidence_id: str = Field(max_length=200)
    summary: str = Field(description="untrusted text, fenced before it reaches the model")
    timestamp: datetime | None = None
    hosts: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)


def evidence_item(row: Any) -> EvidenceItem:
    """An ``evidence`` row (``evidence_id``, ``summary``, ``observed_at``, ``data``) as a note evidence
    item, with the hosts and users of its entities (``data.entities``, or ``data.host``/``data.user``).
    """
    data = getattr(row, "data", None) or {}
    ents = data.get("entities") or {}
    hosts = ents.get("hosts") or ([data["host"]] if data.get("host") else [])
    users = ents.get("users") or ([data["user"]] if data.get("user") else [])
    return EvidenceItem(
        evidence_id=row.evidence_id,
        summary=row.summary,
        timestamp=getattr(row, "observed_at", None),
        hosts=[str(h)[:200] for h in hosts][:20],
        users=[str(u)[:200] for u in users][:20],
    )


class NoteInput(BaseModel):
    case_id: int | None = None
    title: str = Field(description="alert/case title (untrusted)")
    severity: str = Field(default="", max_length=40)


ValidatedTechnique = MappedTechnique


class FindingCode(StrEnum):
    UNKNOWN_CITATION = "unknown_citation"
    UNKNOWN_TECHNIQUE = "unknown_technique"
    UNRECORDED_ACTION = "unrecorded_action"
    MISSING_CITATION = "missing_citation"
    MISSING_SECTION = "missing_section"
    UNGROUNDED_CLAIM = "ungrounded_claim"
    MODEL_ERROR = "model_error"


class Finding(BaseModel):
    code: FindingCode
    section: str
    detail: str = Field(max_length=400)
    attempt: int = 1

    def line(self) -> str:
        return f"{self.code.value} in {self.section}: {self.detail}"


class DraftStatus(StrEnum):
    VALID = "valid"
    REDRAFTED = "redrafted"
    FALLBACK = "fallback"


class DraftResult(BaseModel):
    markdown: str
    status: DraftStatus
    attempts: int = Field(ge=0, le=2, description="model drafts made")
    findings: list[Finding] = Field(default_factory=list, description="of every rejected draft")
    citations: dict[str, str] = Field(default_factory=dict, description="E-label -> evidence id")
    sections: NoteSections | None = Field(default=None, description="the accepted model sections")


def actions_from_audit(events: Iterable[AuditEvent]) -> list[RecordedAction]:
    """``action.recorded`` audit events (``CaseStore.record_action``) as recorded actions, oldest first."""
    out = []
    for event in sorted(events, key=lambda e: (e.at, e.id)):
        if event.action != "action.recorded":
            continue
        data = event.data or {}
        out.append(
            RecordedAction(
                action=str(data.get("action", ""))[:100],
                target=str(data.get("target", data.get("host", data.get("user", ""))))[:300],
                actor=event.actor[:200],
                at=event.at,
                audit_event_id=str(event.id),
            )
        )
    return out
