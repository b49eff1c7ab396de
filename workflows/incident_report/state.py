"""Typed state of the incident-report graph: JSON-plain values and ids only, never ORM objects."""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from socflow.hitl import ApprovalState
from socflow.sdk import TechniqueState

# Printable ASCII with bounded quantifiers, so constrained decoding always finishes.
Sentence = Annotated[str, Field(pattern=r"^[ -~]{1,250}$")]
Bullet = Annotated[str, Field(pattern=r"^[ -~]{1,200}$")]


class SummaryState(TypedDict):
    summary: list[str]
    timeline: list[str]
    status: str  # "valid" | "fallback"
    findings: NotRequired[list[str]]


class ImpactedEntry(TypedDict):
    name: str
    labels: list[str]  # the evidence labels (E1, ...) that name it


class ImpactedState(TypedDict):
    hosts: list[ImpactedEntry]
    users: list[ImpactedEntry]


class TacticGroup(TypedDict):
    tactic: str  # e.g. "Credential Access"
    techniques: list[str]  # technique ids, e.g. ["T1110"]


class PlanState(TypedDict):
    remediation: list[str]
    next_steps: list[str]
    status: str  # "valid" | "fallback"
    findings: NotRequired[list[str]]


class ReportState(TypedDict):
    revision: int
    findings: list[str]


class IncidentState(ApprovalState, total=False):
    reassess: bool
    evidence_ids: list[str]  # the report's evidence, in label order: [E1] is evidence_ids[0]
    summary: SummaryState
    impacted: ImpactedState
    techniques: list[TechniqueState]  # validated techniques (catalog names and tactics)
    tactics: list[TacticGroup]
    plan: PlanState
    report: ReportState


class IncidentSummary(BaseModel):
    """What the model writes for ``summarize_case``: every sentence and timeline entry cites [E#]."""

    summary: list[Sentence] = Field(min_length=1, max_length=4)
    timeline: list[Bullet] = Field(min_length=1, max_length=8)


class ResponsePlan(BaseModel):
    """What the model writes for ``plan_response``: recommendations, never claims that they were done."""

    remediation: list[Bullet] = Field(min_length=1, max_length=6)
    next_steps: list[Bullet] = Field(min_length=1, max_length=5)
