"""One decision path for every door (CLI ``socflow approve``, the REST API, the web UI, the test
harness): validate an analyst's ``socflow.hitl.Decision`` against the case's pending interrupt, then
resume that run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from socflow.actions.records import list_actions
from socflow.errors import AttackError, ConflictError, InputError
from socflow.hitl import Decision, ItemChoice, allowed_actions, missing_items, note_kind_of, unknown_items
from socflow.runner import AdvanceResult, Runner
from socflow.schemas import TechniqueRecord
from socflow.store import CaseStore
from socflow.tables import WorkflowRun

_SPLIT = re.compile(r"[\s,;]+")


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


class NoDecisionPending(ConflictError):
    """The case exists but nothing waits for a decision (already decided, e.g. the loser of a race): 409."""

    code = "no_decision_pending"


def pending_run(runner: Runner, case_id: int, run_id: str | None = None) -> WorkflowRun:
    runs = runner.pending_runs(case_id)
    if not runs or (run_id is not None and not any(r.id == run_id for r in runs)):
        with runner.factory() as session:
            CaseStore(session).get_case(case_id)  # NotFoundError (404) when the case does not exist
    if run_id is not None:
        runs = [r for r in runs if r.id == run_id]
        if not runs:
            raise NoDecisionPending(f"run {run_id} is not awaiting a decision on case {case_id}")
    if not runs:
        raise NoDecisionPending(f"case {case_id} has no decision pending")
    if len(runs) > 1:
        raise AmbiguousDecision(case_id, runs)
    return runs[0]


def submit_decision(
    runner: Runner, case_id: int, decision: Decision, *, run_id: str | None = None
) -> AdvanceResult:
    """Validate ``decision`` against the case's pending interrupt and resume that run.

    Raises StaleDraft (new alerts joined after the draft), NoDecisionPending (nothing pending; 409),
    NotFoundError (no such case),
    AmbiguousDecision (several runs wait: name one), DecisionNotAllowed (not offered now).
    """
    refuse_stale(runner, case_id, run_id)
    run = pending_run(runner, case_id, run_id)
    try:
        check_decision(run, decision)
        check_action_items(runner, case_id, decision)
    except DecisionNotAllowed as exc:
        if exc.field == "items":  # a refused action sub-decision is audited, whatever door sent it
            audit_refused_items(runner, case_id, decision, exc.reason)
        raise
    labels = resolve_techniques(runner.deps.attack, decision.techniques)
    result = runner.resume(run.id, dict(decision.payload()), user=decision.user)
    if result.advanced:  # a decision is an analyst action: it acknowledges the case if nothing did before
        with runner.factory() as session, session.begin():
            CaseStore(session).acknowledge_case(case_id, actor=decision.user, via="decided")
    if result.advanced and (decision.verdict is not None or labels):
        with runner.factory() as session, session.begin():
            CaseStore(session).set_analyst_labels(
                case_id, actor=decision.user, verdict=decision.verdict, techniques=labels
            )
    return result


def refuse_stale(runner: Runner, case_id: int, run_id: str | None = None) -> None:
    """StaleDraft when new alerts joined the case after the draft (of ``run_id``'s note kind, or of any
    kind when no run is named) was written: its waiting run is superseded by a re-assessment."""
    kind = note_kind_of(runner.get(run_id).pending_interrupt) if run_id is not None else None
    with runner.factory() as session:
        drafts = CaseStore(session).list_draft_notes(case_id)
        stale = [n for n in drafts if n.stale_at is not None and (kind is None or n.kind == kind)]
        if stale:
            raise StaleDraft(
                f"the draft of case {case_id} is stale: new alerts joined it at "
                f"{stale[0].stale_at:%Y-%m-%d %H:%M:%S}; a re-assessment is queued, decide on the new draft"
            )


def check_decision(run: WorkflowRun, decision: Decision) -> None:
    """Refuse an action the pending interrupt does not offer, or items it does not hold or lacks."""
    request = run.pending_interrupt
    allowed = allowed_actions(request)
    if decision.action not in allowed:
        raise DecisionNotAllowed(
            f"{decision.action.value} is not allowed now (allowed: {', '.join(a.value for a in allowed)})",
            field="action",
        )
    unknown = unknown_items(request, decision)
    if unknown:
        raise DecisionNotAllowed(f"no such item in this request: {', '.join(unknown)}", field="items")
    missing = missing_items(request, decision)
    if missing and decision.action.value in ("approve", "edit"):
        raise DecisionNotAllowed(f"decide every item: {', '.join(missing)} undecided", field="items")


def check_action_items(runner: Runner, case_id: int, decision: Decision) -> None:
    """Refuse approving a proposed action the deployment's catalog does not enable (any more)."""
    approved = {i.item_id for i in decision.items if i.choice is ItemChoice.approve}
    if not approved:
        return
    with runner.factory() as session:
        rows = [r for r in list_actions(session, case_id) if r.item_id in approved]
    off = [r.item_id for r in rows if not runner.deps.actions.is_enabled(r.action)]
    if off:
        raise DecisionNotAllowed(
            f"not enabled in this deployment's action catalog: {', '.join(off)}", field="items"
        )


def audit_refused_items(runner: Runner, case_id: int, decision: Decision, why: str) -> None:
    """One ``action.refused`` audit event per item of a refused decision that asked to approve."""
    with runner.factory() as session, session.begin():
        store = CaseStore(session)
        for item in decision.items:
            if item.choice is ItemChoice.approve:
                store.audit_action(
                    case_id,
                    "action.refused",
                    actor=decision.user,
                    entity_id=item.item_id,
                    data={"item_id": item.item_id, "reason": why[:500], "nothing_executed": True},
                )


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
