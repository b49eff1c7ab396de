"""Typed state of the alert-triage graph: JSON-plain values and ids only, never ORM objects."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

Verdict = Literal["true_positive", "benign_positive", "false_positive", "needs_review"]
Priority = Literal["low", "medium", "high", "critical"]
EvidenceLabel = Annotated[str, Field(pattern=r"^E[0-9]{1,3}$")]


class TriageState(TypedDict, total=False):
    case_id: int
    reassess: bool
    evidence_ids: list[str]
    techniques: list[dict[str, Any]]
    assessment: dict[str, Any]
    policy: dict[str, Any]
    draft: dict[str, Any]
    drafts_made: int
    reject_reason: str | None
    manual_only: bool
    approval_request: dict[str, Any]
    decision: dict[str, Any]
    outcome: str
    finalized: int


class Assessment(BaseModel):
    """What the model writes for ``assess_case`` (bounded for constrained decoding). No confidence here:
    confidence comes from label log-likelihoods, never from a number the model writes."""

    verdict: Verdict
    priority: Priority
    rationale: str = Field(pattern=r"^[ -~]{1,300}$")
    evidence: list[EvidenceLabel] = Field(default_factory=list, max_length=5)
