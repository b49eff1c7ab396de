"""Typed state of the alert-triage graph: JSON-plain values and ids only, never ORM objects."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from socflow.enums import Priority, Verdict
from socflow.hitl import ApprovalState
from socflow.sdk import TechniqueState

EvidenceLabel = Annotated[str, Field(pattern=r"^E[0-9]{1,3}$")]


class AssessmentState(TypedDict, total=False):
    verdict: str  # a Verdict value
    priority: str  # a Priority value
    confidence: float | None  # from label log-likelihoods, never a number the model writes
    evidence: list[str]  # evidence ids the verdict rests on
    rationale: str
    scores: dict[str, float]  # the label scores the confidence was read from (calibrated when it says so)
    calibration: str  # "uncalibrated", or the temperature and how many items it was fitted on
    valid: bool  # False: the fallback (no model, or its answer failed twice)
    evidence_omitted: int  # evidence items left out of the prompt to fit the model's context (absent: 0)


class PolicyState(TypedDict):
    auto_close: bool
    reason: str


class DraftState(TypedDict):
    revision: int
    status: str  # the drafter's status: valid, repaired, fallback


class TriageState(ApprovalState, total=False):
    reassess: bool
    evidence_ids: list[str]
    techniques: list[TechniqueState]
    assessment: AssessmentState
    policy: PolicyState
    draft: DraftState


class Assessment(BaseModel):
    """What the model writes for ``assess_case`` (bounded for constrained decoding). No confidence here:
    confidence comes from label log-likelihoods, never from a number the model writes."""

    verdict: Verdict
    priority: Priority
    rationale: str = Field(pattern=r"^[ -~]{1,300}$")
    evidence: list[EvidenceLabel] = Field(default_factory=list, max_length=5)
