"""Typed state and input of the log-triage graph: JSON-plain values only."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict

MAX_LINES = 5000
MAX_LINE_CHARS = 4096

LogLine = Annotated[str, Field(max_length=MAX_LINE_CHARS)]


class LogTriageInput(BaseModel):
    """What ``socflow workflow run log_triage --input FILE`` accepts: ``{"lines": [...]}`` (a text file of
    lines is read into this shape). Blank lines are dropped."""

    model_config = ConfigDict(extra="forbid")

    lines: list[LogLine] = Field(min_length=1, max_length=MAX_LINES)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="open a case at this malicious score")
    title: str = Field(default="Suspicious log lines", min_length=1, max_length=200)
    severity: str = Field(default="medium", pattern=r"^(informational|low|medium|high|critical)$")

    @field_validator("lines")
    @classmethod
    def _not_blank(cls, lines: list[str]) -> list[str]:
        kept = [line.rstrip("\r\n") for line in lines if line.strip()]
        if not kept:
            raise ValueError("every line is blank")
        return kept


class RankedLine(TypedDict):
    index: int
    line: str
    score: float


class LogTriageState(TypedDict, total=False):
    case_id: int | None  # set by open_case when a line scores above the threshold
    lines: list[str]
    threshold: float
    title: str
    severity: str
    scores: list[float]  # malicious score per line, in input order
    ranked: list[RankedLine]  # most malicious first
    flagged: list[int]  # indexes of the lines at or above the threshold, ranked
    evidence_ids: list[str]
