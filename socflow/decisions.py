"""One decision path for every door (CLI ``socflow approve``, the REST API, the web UI): validate an
analyst's decision against the case's pending interrupt, then resume that run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from socflow.errors import ConflictError, InputError, NotFoundError
from socflow.runner import AdvanceResult, Runner
from socflow.store import CaseStore
from socflow.tables import WorkflowRun

Action = Literal["approve", "edit", "reject", "escalate"]


class Decision(BaseModel):
    action: Action
    user: str = Field(min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=64 * 1024)
    reason: str | None = Field(default=None, min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _needs(self) -> Decision:
        if self.action == "edit" and not self.body:
            raise ValueError("an edit needs the edited note body")
        if self.action in ("reject", "escalate") and not self.reason:
            raise ValueError(f"{self.action} needs a reason")
        return self


class AmbiguousDecision(ConflictError):
    """The case has several pending interrupts; the caller must name the run."""

    code = "ambiguous_decision"

    def __init__(self, case_id: int, runs: list[WorkflowRun]) -> None:
        self.runs = runs
        listing = ", ".join(f"{r.id} ({r.workflow})" for r in runs)
        super().__init__(f"case {case_id} has {len(runs)} pending decisions: {listing}; pass --run")


class DecisionNotAllowed(InputError):
    code = "decision_not_allowed"


class StaleDraft(ConflictError):
    """New alerts joined the case after the draft was written; a re-assessment is on its way."""

    code = "stale_draft"


def pending_run(runner: Runner, case_id: int, run_id: str | None = None) -> WorkflowRun:
    runs = runner.pending_runs(case_id)
    if run_id is not None:
        runs = [r for r in runs if r.id == run_id]
        if not runs:
            raise NotFoundError(f"run {run_id} is not awaiting a decision on case {case_id}")
    if not runs:
        raise NotFoundError(f"case {case_id} has no decision pending")
    if len(runs) > 1:
        raise AmbiguousDecision(case_id, runs)
    return runs[0]


def submit_decision(
    runner: Runner, case_id: int, decision: Decision, *, run_id: str | None = None
) -> AdvanceResult:
    """Validate ``decision`` against the case's pending interrupt and resume that run.

    Raises StaleDraft (new alerts joined after the draft), NotFoundError (nothing pending),
    AmbiguousDecision (several runs wait: name one), DecisionNotAllowed (not offered now).
    """
    with runner.factory() as session:
        note = CaseStore(session).get_note(case_id)
        if note is not None and note.stale_at is not None and note.status == "draft":
            raise StaleDraft(
                f"the draft of case {case_id} is stale: new alerts joined it at "
                f"{note.stale_at:%Y-%m-%d %H:%M:%S}; a re-assessment is queued, decide on the new draft"
            )
    run = pending_run(runner, case_id, run_id)
    allowed = (run.pending_interrupt or {}).get("allowed_actions") or [
        "approve",
        "edit",
        "reject",
        "escalate",
    ]
    if decision.action not in allowed:
        raise DecisionNotAllowed(
            f"{decision.action} is not allowed now (allowed: {', '.join(allowed)})", field="action"
        )
    return runner.resume(run.id, decision.model_dump(mode="json"), user=decision.user)
