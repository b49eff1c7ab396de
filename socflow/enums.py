"""Finite sets used across the platform (StrEnum, stored as their string values)."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = [Severity.informational, Severity.low, Severity.medium, Severity.high, Severity.critical]


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class CaseStatus(StrEnum):
    new = "new"
    triaging = "triaging"
    awaiting_approval = "awaiting_approval"
    escalated = "escalated"
    closed = "closed"
    needs_attention = "needs_attention"  # its run failed (reason on the run); `socflow runs retry` resumes it


class Verdict(StrEnum):
    true_positive = "true_positive"
    benign_positive = "benign_positive"
    false_positive = "false_positive"
    needs_review = "needs_review"


class ObservableType(StrEnum):
    ip = "ip"
    domain = "domain"
    url = "url"
    hash = "hash"
    user = "user"
    host = "host"
    process = "process"
    email = "email"


class NoteStatus(StrEnum):
    draft = "draft"
    approved = "approved"
    rejected = "rejected"


DEFAULT_NOTE_KIND = "case_note"  # the note kind a workflow drafts unless its spec names another


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    awaiting_input = "awaiting_input"
    completed = "completed"
    failed = "failed"
    superseded = "superseded"  # its draft went stale: a newer run re-assesses the case


FINAL_RUN_STATUSES = frozenset({RunStatus.completed, RunStatus.failed, RunStatus.superseded})
ACTIVE_RUN_STATUSES = frozenset({RunStatus.queued, RunStatus.running})


class AuthorKind(StrEnum):
    model = "model"
    analyst = "analyst"
    system = "system"


# Allowed case status moves (design section 3). Every move is an audit event.
# needs_attention: a run of the case failed for good; a retry moves the case back where the run left it.
_ATTENTION = CaseStatus.needs_attention
CASE_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.new: frozenset({CaseStatus.triaging, CaseStatus.closed, CaseStatus.escalated, _ATTENTION}),
    CaseStatus.triaging: frozenset(
        {CaseStatus.awaiting_approval, CaseStatus.closed, CaseStatus.escalated, _ATTENTION}
    ),
    CaseStatus.awaiting_approval: frozenset(
        {CaseStatus.triaging, CaseStatus.closed, CaseStatus.escalated, _ATTENTION}
    ),
    _ATTENTION: frozenset(
        {
            CaseStatus.new,
            CaseStatus.triaging,
            CaseStatus.awaiting_approval,
            CaseStatus.closed,
            CaseStatus.escalated,
        }
    ),
    CaseStatus.escalated: frozenset({CaseStatus.closed, CaseStatus.triaging}),
    CaseStatus.closed: frozenset({CaseStatus.triaging}),
}
