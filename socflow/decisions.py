"""One decision path for every door (CLI ``socflow approve``, the REST API, the web UI): validate an
analyst's decision against the case's pending interrupt, then resume that run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from socflow.enums import Verdict
from socflow.errors import AttackError, ConflictError, InputError, NotFoundError
from socflow.runner import AdvanceResult, Runner
from socflow.schemas import TechniqueRecord
from socflow.store import CaseStore
from socflow.tables import WorkflowRun

Action = Literal["approve", "edit", "reject", "escalate"]


MAX_OVERRIDE_TECHNIQUES = 20
_SPLIT = re.compile(r"[\s,;]+")


class Decision(BaseModel):
    """An analyst's decision, with optional overrides stored as analyst labels for evaluation."""

    action: Action
    user: str = Field(min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=64 * 1024)
    reason: str | None = Field(default=None, min_length=1, max_length=4000)
    verdict: Verdict | None = None
    techniques: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=MAX_OVERRIDE_TECHNIQUES
    )

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
    labels = resolve_techniques(runner.deps.attack, decision.techniques)
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
    result = runner.resume(
        run.id, decision.model_dump(mode="json", exclude={"verdict", "techniques"}), user=decision.user
    )
    if result.advanced:  # a decision is an analyst action: it acknowledges the case if nothing did before
        with runner.factory() as session, session.begin():
            CaseStore(session).acknowledge_case(case_id, actor=decision.user, via="decided")
    if result.advanced and (decision.verdict is not None or labels):
        with runner.factory() as session, session.begin():
            CaseStore(session).set_analyst_labels(
                case_id, actor=decision.user, verdict=decision.verdict, techniques=labels
            )
    return result


def resolve_techniques(catalog: Any, ids: Sequence[str]) -> list[TechniqueRecord]:
    """Technique ids typed by an analyst, validated against the ATT&CK catalog (names and tactics from it)."""
    out: dict[str, TechniqueRecord] = {}
    for raw_id in ids:
        try:
            tech = catalog.resolve(raw_id.strip())
        except AttackError as exc:
            raise InputError(str(exc), field="techniques") from None
        out.setdefault(
            tech.id,
            TechniqueRecord(
                technique_id=tech.id,
                name=tech.name,
                tactics=list(catalog.tactic_names(tech)),
                source="analyst",
                confidence=1.0,
            ),
        )
    return list(out.values())


def split_ids(raw: str | None) -> list[str]:
    """A free-text list of technique ids (commas, spaces or semicolons) as a list."""
    return [x for x in _SPLIT.split((raw or "").strip()) if x]
