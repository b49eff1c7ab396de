"""Nodes of the alert-triage graph: plain functions ``(state, runtime) -> partial state``.

Every node is a ``@run_step``: it writes its rows in one ``step_writes`` transaction that also records its
state update, so a node re-run after a crash (LangGraph re-runs the node whose checkpoint was not
written) returns the recorded update and adds nothing twice. The approval part is ``socflow.hitl``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from langgraph.runtime import Runtime

from socflow.actions.catalog import unattended_actions
from socflow.actions.propose import evidence_ref, propose_actions
from socflow.actions.records import apply_item_decisions, store_proposals
from socflow.casework import alert_evidence, case_and_alerts, case_evidence
from socflow.enums import AuthorKind, CaseStatus, Verdict
from socflow.errors import ModelError, StructuredOutputError, TransientError
from socflow.evidence import case_context, collect_evidence
from socflow.hitl import Outcome, apply_note_decision, request_approval
from socflow.model.budget import prompt_budget
from socflow.model.schema import bounded_schema
from socflow.model.structured import schema_instruction
from socflow.outbox import enqueue_writeback
from socflow.policy import case_facts, decide, priority_rank
from socflow.schemas import TechniqueRecord
from socflow.sdk import RunContext, TechniqueState, technique_state
from socflow.steps import run_step, step_writes
from socflow.store import CaseStore
from socflow.tables import Alert, Case, Evidence
from tools.attack import MappingInput, map_techniques
from tools.attack.mapper import EvidenceText
from tools.notes import NoteInput, ValidatedTechnique, actions_from_audit, draft_case_note, evidence_item
from workflows.alert_triage.prompts import VERDICT_LABELS, fit_case
from workflows.alert_triage.state import Assessment, AssessmentState, TriageState

ACTOR = "socflow:alert_triage"
NOTE_KIND = "case_note"
WINDOW = timedelta(hours=1)
MAX_ALERT_EVIDENCE = 20
MAX_SIEM_EVIDENCE = 30
MAX_MAPPED_ALERTS = 10
MAX_PROMPT_EVIDENCE = 25
ASSESSMENT_SCHEMA = bounded_schema(Assessment)
CLOSING_VERDICTS = {Verdict.false_positive.value, Verdict.benign_positive.value}


def _load(ctx: RunContext, case_id: int) -> tuple[Case, list[Alert], list[Evidence]]:
    """The case and its alerts (read once per drive) and its evidence now."""
    case, alerts = case_and_alerts(ctx.deps.factory, ctx.memo, case_id, max_alerts=200)
    return case, alerts, case_evidence(ctx.deps.factory, case_id)


@run_step
def gather_evidence(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    ctx = runtime.context
    case_id = state["case_id"]
    _, alerts = case_and_alerts(ctx.deps.factory, ctx.memo, case_id, max_alerts=200)
    context = case_context(case_id, alerts[:MAX_MAPPED_ALERTS], window=WINDOW)
    found = collect_evidence(ctx.deps.evidence, context, limit=MAX_SIEM_EVIDENCE)
    records = [alert_evidence(a) for a in alerts[:MAX_ALERT_EVIDENCE]] + found
    with step_writes(runtime) as tx:
        if tx.store.get_case(case_id).status == CaseStatus.new.value:
            tx.store.move_case(case_id, CaseStatus.triaging, actor=ACTOR, reason="triage started")
        tx.store.add_evidence(case_id, records, actor=ACTOR)
        update: TriageState = {"evidence_ids": [e.evidence_id for e in tx.store.list_evidence(case_id)]}
        return tx.done(update)


@run_step
def map_attack(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    ctx = runtime.context
    case_id = state["case_id"]
    _, alerts, evidence = _load(ctx, case_id)
    evidence_text = [EvidenceText(evidence_id=e.evidence_id, text=e.summary) for e in evidence]
    by_key: dict[tuple[str, str], TechniqueState] = {}
    seen_rules: set[str] = set()
    for alert in alerts:
        key = alert.rule_id or alert.title
        if key in seen_rules or len(seen_rules) >= MAX_MAPPED_ALERTS:
            continue
        seen_rules.add(key)
        result = map_techniques(
            MappingInput(
                text=f"{alert.title}. {alert.description or ''}"[:4000],
                rule_tags=list(alert.rule_tags or []),
                evidence=evidence_text,
            ),
            model=ctx.deps.model,
            catalog=ctx.deps.attack,
            ctx=ctx.call("map_attack"),
        )
        for t in result.techniques:
            by_key.setdefault((t.technique_id, t.source.value), technique_state(t.model_dump(mode="json")))
    techniques = list(by_key.values())
    with step_writes(runtime) as tx:
        tx.store.add_techniques(case_id, [TechniqueRecord.model_validate(t) for t in techniques], actor=ACTOR)
        update: TriageState = {"techniques": techniques}
        return tx.done(update)


@run_step
def assess_case(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    ctx = runtime.context
    case_id = state["case_id"]
    case, alerts, evidence = _load(ctx, case_id)
    techs = [f"{t['technique_id']} {t['name']}" for t in state.get("techniques", [])]
    model = ctx.deps.model
    prompt = fit_case(  # evidence in priority order; the lowest-priority items are left out first
        case.title,
        case.severity,
        [f"{a.title} ({a.severity}): {(a.description or '')[:300]}" for a in alerts[:10]],
        [e.summary[:300] for e in evidence[:MAX_PROMPT_EVIDENCE]],
        techs,
        budget=prompt_budget(model),
        answer_tokens=ASSESSMENT_SCHEMA.token_budget,
        instruction=schema_instruction(ASSESSMENT_SCHEMA.schema_json),
    )
    assessment: AssessmentState
    if model is None:
        assessment = {
            "verdict": "needs_review",
            "priority": "medium",
            "confidence": None,
            "evidence": [],
            "rationale": "no model configured: an analyst must decide",
            "valid": False,
        }
    else:
        try:
            answer = model.generate_structured(prompt.assess(techs), Assessment, ctx=ctx.call("assess_case"))
            scores = model.score_labels(prompt.score(), VERDICT_LABELS, ctx=ctx.call("assess_case"))
        except (StructuredOutputError, ModelError) as exc:
            if isinstance(exc, TransientError):
                raise  # the endpoint is down or busy: the runner retries the node, then fails the run
            assessment = {
                "verdict": "needs_review",
                "priority": "medium",
                "confidence": None,
                "evidence": [],
                "rationale": "the model's assessment was invalid twice: an analyst must decide",
                "valid": False,
            }
        else:
            labels = {f"E{i}": e.evidence_id for i, e in enumerate(evidence[: prompt.kept], start=1)}
            calibration = ctx.deps.calibration
            if calibration is not None:
                scores = calibration.apply(scores)
            assessment = {
                "verdict": answer.verdict.value,
                "priority": answer.priority.value,
                "rationale": answer.rationale,
                "evidence": [labels[x] for x in answer.evidence if x in labels],
                "confidence": round(float(scores.get(answer.verdict, 0.0)), 4),
                "scores": {k: round(float(v), 4) for k, v in scores.items()},
                "calibration": calibration.describe() if calibration is not None else "uncalibrated",
                "valid": True,
            }
    if prompt.omitted:
        assessment["evidence_omitted"] = prompt.omitted
    with step_writes(runtime) as tx:
        tx.store.set_assessment(
            case_id,
            verdict=assessment["verdict"],
            confidence=assessment["confidence"],
            priority=assessment["priority"],
            actor=ACTOR,
            rationale=assessment["rationale"],
            calibration=assessment.get("calibration"),
        )
        update: TriageState = {"assessment": assessment}
        return tx.done(update)


@run_step
def apply_policy(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    ctx = runtime.context
    a = state["assessment"]
    facts = case_facts(
        ctx.deps.factory,
        state["case_id"],
        verdict=Verdict(a["verdict"]),
        confidence=a.get("confidence") or 0.0,
    )
    decision = decide(ctx.deps.policy, facts)
    with step_writes(runtime) as tx:
        case = tx.store.get_case(state["case_id"])
        if decision.priority is not None and priority_rank(decision.priority) > priority_rank(case.priority):
            tx.store.set_assessment(  # policy lifts the priority (a threat-intel match); never lowers it
                case.id,
                verdict=case.verdict or a["verdict"],
                confidence=case.confidence,
                priority=decision.priority.value,
                actor=ACTOR,
                rationale=decision.priority_reason,
            )
        update: TriageState = {"policy": {"auto_close": decision.auto_close, "reason": decision.reason}}
        return tx.done(update)


def route_after_apply_policy(state: TriageState) -> Literal["draft_note", "finalize_case"]:
    return "finalize_case" if state["policy"]["auto_close"] else "draft_note"


def _observables(ctx: RunContext, case_id: int) -> list[tuple[str, str]]:
    with ctx.deps.factory() as session:
        return [(o.type, o.value) for o in CaseStore(session).list_observables(case_id=case_id)]


@run_step
def draft_note(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    ctx = runtime.context
    case_id = state["case_id"]
    case, _, evidence = _load(ctx, case_id)
    with ctx.deps.factory() as session:
        actions = actions_from_audit(CaseStore(session).list_audit(case_id=case_id, action="action.recorded"))
    reason = state.get("reject_reason")
    title = case.title if not reason else f"{case.title} (analyst asked: {reason})"
    result = draft_case_note(
        ctx.deps.model,
        NoteInput(case_id=case_id, title=title[:600], severity=case.severity),
        [evidence_item(e) for e in evidence],  # hosts and users too (the fallback lists them)
        [ValidatedTechnique.model_validate(t) for t in state.get("techniques", [])],
        actions,
        ctx=ctx.call("draft_note"),
        catalog=ctx.deps.attack,
    )
    model = ctx.deps.model
    proposals = propose_actions(
        ctx.deps.actions,
        model,
        case_id=case_id,
        case_block=f"Title: {case.title}\nSeverity: {case.severity}",
        verdict=state["assessment"]["verdict"],
        observables=_observables(ctx, case_id),
        evidence=[evidence_ref(e.evidence_id, e.summary, e.data) for e in evidence],
        ctx=ctx.call("propose_actions"),
    )
    labels = {e.evidence_id: f"E{i}" for i, e in enumerate(evidence, start=1)}
    unattended: dict[str, str] = {}
    if proposals.proposals and ctx.deps.actions.unattended:  # only on the policy's trusted facts
        a = state["assessment"]
        facts = case_facts(
            ctx.deps.factory, case_id, verdict=Verdict(a["verdict"]), confidence=a.get("confidence") or 0.0
        )
        unattended = unattended_actions(ctx.deps.actions, facts)
    with step_writes(runtime) as tx:
        items = store_proposals(
            tx.store,
            case_id,
            ctx.run_id,
            proposals,
            labels=labels,
            actor=ACTOR,
            catalog=ctx.deps.actions,
            unattended=unattended,
            note_kind=NOTE_KIND,
        )
        revision = tx.store.draft_note(
            case_id,
            result.markdown,
            author=model.model_id if model is not None else "socflow",
            author_kind=AuthorKind.model if model is not None else AuthorKind.system,
            kind=NOTE_KIND,
        ).revision
        if tx.store.get_case(case_id).status != CaseStatus.awaiting_approval.value:
            tx.store.move_case(case_id, CaseStatus.awaiting_approval, actor=ACTOR, reason="draft ready")
        request = request_approval(
            state,
            ctx,
            note_kind=NOTE_KIND,
            revision=revision,
            evidence_ids=state.get("evidence_ids", []),
            verdict=state["assessment"]["verdict"],
            confidence=state["assessment"].get("confidence"),
            items=[{"item_id": i["item_id"], "summary": i["summary"]} for i in items],
        )
        update: TriageState = {"draft": {"revision": revision, "status": result.status.value}, **request}
        return tx.done(update)


@run_step
def finalize_case(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
    case_id = state["case_id"]
    with step_writes(runtime) as tx:
        if state["policy"]["auto_close"]:
            tx.store.move_case(case_id, CaseStatus.closed, actor=ACTOR, reason=state["policy"]["reason"])
            outcome = Outcome.auto_closed.value
            tx.store.record_run_event(
                tx.ctx.run_id, f"run.{tx.node}", case_id=case_id, actor=ACTOR, data={"outcome": outcome}
            )
            writeback = {"action": "auto_close", "user": ACTOR, "run_id": tx.ctx.run_id, "step": tx.visit.key}
            enqueue_writeback(tx.store.session, tx.store.get_case(case_id), writeback)
            closed: TriageState = {"outcome": outcome}
            return tx.done(closed)
        closing = tx.store.get_case(case_id).verdict in CLOSING_VERDICTS
        decided = apply_note_decision(
            tx,
            state,
            note_kind=NOTE_KIND,
            actor=ACTOR,
            approved_case_status=CaseStatus.closed if closing else CaseStatus.escalated,
            case_follows_note=True,
        )
        if decided.get("outcome") != Outcome.rejected.value:  # actions and write-back rows, same transaction
            apply_item_decisions(
                tx.store,
                case_id,
                state["decision"],
                tx.ctx.deps.actions,
                note_kind=NOTE_KIND,
                run_id=tx.ctx.run_id,
            )
            decision = {**state["decision"], "run_id": tx.ctx.run_id, "step": tx.visit.key}
            enqueue_writeback(tx.store.session, tx.store.get_case(case_id), decision)
        return tx.done(decided)


__all__ = [
    "apply_policy",
    "assess_case",
    "draft_note",
    "finalize_case",
    "gather_evidence",
    "map_attack",
    "route_after_apply_policy",
]
