"""Typed state of the incident-report graph: JSON-plain values and ids only, never ORM objects."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

# Printable ASCII with bounded quantifiers, so constrained decoding always finishes.
Sentence = Annotated[str, Field(pattern=r"^[ -~]{1,250}$")]
Bullet = Annotated[str, Field(pattern=r"^[ -~]{1,200}$")]


class IncidentState(TypedDict, total=False):
    case_id: int
    evidence_ids: list[str]  # the report's evidence, in label order: [E1] is evidence_ids[0]
    summary: dict[str, Any]  # {"summary": [...], "timeline": [...], "status": "valid" | "fallback"}
    impacted: dict[str, Any]  # {"hosts": [{"name", "labels"}], "users": [...]}
    techniques: list[dict[str, Any]]  # validated techniques (catalog names and tactics)
    tactics: list[dict[str, Any]]  # [{"tactic": "Credential Access", "techniques": ["T1110", ...]}]
    plan: dict[str, Any]  # {"remediation": [...], "next_steps": [...], "status": ...}
    report: dict[str, Any]  # {"revision", "findings"}
    drafts_made: int
    reject_reason: str | None
    manual_only: bool
    approval_request: dict[str, Any]
    decision: dict[str, Any]
    outcome: str
    finalized: int


class IncidentSummary(BaseModel):
    """What the model writes for ``summarize_case``: every sentence and timeline entry cites [E#]."""

    summary: list[Sentence] = Field(min_length=1, max_length=4)
    timeline: list[Bullet] = Field(min_length=1, max_length=8)


class ResponsePlan(BaseModel):
    """What the model writes for ``plan_response``: recommendations, never claims that they were done."""

    remediation: list[Bullet] = Field(min_length=1, max_length=6)
    next_steps: list[Bullet] = Field(min_length=1, max_length=5)
