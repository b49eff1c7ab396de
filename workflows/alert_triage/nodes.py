"""Nodes of the alert-triage graph: plain functions ``(state, runtime) -> partial state``.

Nodes read and write through the case store in short transactions of their own, and are idempotent:
a node re-run after a crash (LangGraph re-runs the node whose checkpoint was not written) finds its
rows already there and adds nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from socflow.casework import alert_evidence, load_case
from socflow.enums import CaseStatus, NoteStatus, Severity
from socflow.enums import Verdict as VerdictEnum
from socflow.errors import ModelError, SiemError, StructuredOutputError
from socflow.policy import CaseFacts, decide
from socflow.schemas import EvidenceRecord, TechniqueRecord
from socflow.sdk import RunContext
from socflow.store import CaseStore
from socflow.tables import Alert, Evidence
from tools.attack import MappingInput, map_techniques
from tools.attack.mapper import EvidenceText
from tools.notes import NoteInput, ValidatedTechnique, actions_from_audit, draft_case_note, evidence_item
from tools.siem.models import EntityQuery
from workflows.alert_triage.prompts import VERDICT_LABELS, assess_messages, case_block, score_prompt
from workflows.alert_triage.state import Assessment, TriageState

ACTOR = "socflow:alert_triage"
WINDOW = timedelta(hours=1)
MAX_ALERT_EVIDENCE = 20
MAX_SIEM_EVIDENCE = 30
MAX_MAPPED_ALERTS = 10
CLOSING_VERDICTS = {VerdictEnum.false_positive.value, VerdictEnum.benign_positive.value}


def _siem_evidence(ctx: RunContext, case_id: int, alerts: list[Alert]) -> list[EvidenceRecord]:
    siem = ctx.deps.siem
    if siem is None:
        return []
    times = [a.observed_at for a in alerts if a.observed_at is not None]
    since = min(times) - WINDOW if times else None
    until = max(times) + WINDOW if times else None
    queries: list[EntityQuery] = []
    for alert in alerts[:MAX_MAPPED_ALERTS]:
        ents = alert.entities or {}
        queries += [
            EntityQuery(host=h, since=since, until=until, limit=10) for h in ents.get("hosts", [])[:3]
        ]
        queries += [
            EntityQuery(user=u, since=since, until=until, limit=10) for u in ents.get("users", [])[:3]
        ]
    records: dict[str, EvidenceRecord] = {}
    for query in dict.fromkeys(queries):
        try:
            events = siem.search(query)
        except SiemError:
            continue  # a failing lookup leaves less evidence, never a failed triage
        for event in events:
            payload = event.to_evidence(str(case_id))
            payload.pop("case_id", None)
            records.setdefault(payload["evidence_id"], EvidenceRecord.model_validate(payload))
            if len(records) >= MAX_SIEM_EVIDENCE:
                return list(records.values())
    return list(records.values())


def _load(ctx: RunContext, case_id: int) -> tuple[Any, list[Alert], list[Evidence]]:
    snap = load_case(ctx.deps.factory, case_id, max_alerts=200)
    return snap.case, snap.alerts, snap.evidence


def gather_evidence(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    case, alerts, _ = _load(ctx, case_id)
    records = [alert_evidence(a) for a in alerts[:MAX_ALERT_EVIDENCE]] + _siem_evidence(ctx, case_id, alerts)
    with ctx.deps.factory() as session, session.begin():
        store = CaseStore(session)
        if case.status == CaseStatus.new.value:
            store.move_case(case_id, CaseStatus.triaging, actor=ACTOR, reason="triage started")
        store.add_evidence(case_id, records, actor=ACTOR)
        ids = [e.evidence_id for e in store.list_evidence(case_id)]
    return {"evidence_ids": ids}


def map_attack(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    _, alerts, evidence = _load(ctx, case_id)
    evidence_text = [EvidenceText(evidence_id=e.evidence_id, text=e.summary) for e in evidence]
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
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
            by_key.setdefault((t.technique_id, t.source.value), t.model_dump(mode="json"))
    techniques = list(by_key.values())
    with ctx.deps.factory() as session, session.begin():
        CaseStore(session).add_techniques(
            case_id, [TechniqueRecord.model_validate(t) for t in techniques], actor=ACTOR
        )
    return {"techniques": techniques}


def assess_case(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    case, alerts, evidence = _load(ctx, case_id)
    block = case_block(
        case.title,
        case.severity,
        [f"{a.title} ({a.severity}): {(a.description or '')[:300]}" for a in alerts[:10]],
        [e.summary[:300] for e in evidence[:25]],
    )
    techs = [f"{t['technique_id']} {t['name']}" for t in state.get("techniques", [])]
    model = ctx.deps.model
    assessment: dict[str, Any]
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
            answer = model.generate_structured(
                assess_messages(block, techs), Assessment, ctx=ctx.call("assess_case")
            )
            scores = model.score_labels(score_prompt(block), VERDICT_LABELS, ctx=ctx.call("assess_case"))
        except (StructuredOutputError, ModelError):
            assessment = {
                "verdict": "needs_review",
                "priority": "medium",
                "confidence": None,
                "evidence": [],
                "rationale": "the model's assessment was invalid twice: an analyst must decide",
                "valid": False,
            }
        else:
            labels = {f"E{i}": e.evidence_id for i, e in enumerate(evidence[:25], start=1)}
            assessment = {
                "verdict": answer.verdict,
                "priority": answer.priority,
                "rationale": answer.rationale,
                "evidence": [labels[x] for x in answer.evidence if x in labels],
                "confidence": round(float(scores.get(answer.verdict, 0.0)), 4),
                "scores": {k: round(float(v), 4) for k, v in scores.items()},
                "valid": True,
            }
    with ctx.deps.factory() as session, session.begin():
        CaseStore(session).set_assessment(
            case_id,
            verdict=assessment["verdict"],
            confidence=assessment["confidence"],
            priority=assessment["priority"],
            actor=ACTOR,
            rationale=assessment["rationale"],
        )
    return {"assessment": assessment}


def apply_policy(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case, alerts, _ = _load(ctx, state["case_id"])
    a = state["assessment"]
    facts = CaseFacts(
        severity=Severity(case.severity),
        verdict=VerdictEnum(a["verdict"]),
        confidence=a["confidence"] if a.get("confidence") is not None else 0.0,
        rule_ids=sorted({al.rule_id or "" for al in alerts}),
    )
    return {"policy": decide(ctx.deps.policy, facts).model_dump()}


def route_after_apply_policy(state: TriageState) -> Literal["draft_note", "finalize_case"]:
    return "finalize_case" if state["policy"]["auto_close"] else "draft_note"


def draft_note(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    n = state.get("drafts_made", 0) + 1
    marker = f"run {ctx.run_id} draft {n}"
    case, _, evidence = _load(ctx, case_id)
    with ctx.deps.factory() as session:
        store = CaseStore(session)
        techniques = [ValidatedTechnique.model_validate(t) for t in state.get("techniques", [])]
        actions = actions_from_audit(store.list_audit(case_id=case_id, action="action.recorded"))
        existing = store.find_revision(case_id, comment=marker)
        body = existing.body if existing is not None else None
    status = "existing"
    if body is None:
        title = (
            case.title
            if not state.get("reject_reason")
            else f"{case.title} (analyst asked: {state['reject_reason']})"
        )
        result = draft_case_note(
            ctx.deps.model,
            NoteInput(case_id=case_id, title=title[:600], severity=case.severity),
            [evidence_item(e) for e in evidence],  # hosts and users too (the fallback lists them)
            techniques,
            actions,
            ctx=ctx.call("draft_note"),
            catalog=ctx.deps.attack,
        )
        body, status = result.markdown, result.status.value
        author = ctx.deps.model.model_id if ctx.deps.model is not None else "socflow"
        with ctx.deps.factory() as session, session.begin():
            store = CaseStore(session)
            store.draft_note(
                case_id,
                body,
                author=author,
                author_kind="model" if ctx.deps.model else "system",
                comment=marker,
            )
            if store.get_case(case_id).status != CaseStatus.awaiting_approval.value:
                store.move_case(case_id, CaseStatus.awaiting_approval, actor=ACTOR, reason="draft ready")
    with ctx.deps.factory() as session:
        note = CaseStore(session).get_note(case_id)
        revision = note.current_revision if note else 0
    return {
        "drafts_made": n,
        "draft": {"revision": revision, "status": status},
        "approval_request": {
            "case_id": case_id,
            "run_id": ctx.run_id,
            "note_revision": revision,
            "evidence_ids": state.get("evidence_ids", []),
            "verdict": state["assessment"]["verdict"],
            "confidence": state["assessment"]["confidence"],
            "allowed_actions": ["approve", "edit", "reject", "escalate"],
        },
    }


def await_approval(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    return {"decision": interrupt(state["approval_request"])}


def finalize_case(state: TriageState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    decision = state.get("decision") if not state["policy"]["auto_close"] else None
    step = state.get("finalized", 0) + 1
    outcome: str
    update: dict[str, Any] = {"finalized": step}
    with ctx.deps.factory() as session, session.begin():
        store = CaseStore(session)
        done = store.find_run_step(ctx.run_id, "run.finalize_case", step)
        if done is not None:  # re-run after a crash: the step committed atomically before the crash
            return done
        case = store.get_case(case_id)
        if decision is None:
            store.move_case(case_id, CaseStatus.closed, actor=ACTOR, reason=state["policy"]["reason"])
            outcome = "auto_closed"
        else:
            user, action = decision["user"], decision["action"]
            closing = case.verdict in CLOSING_VERDICTS
            if action in ("approve", "edit"):
                body = decision.get("body") if action == "edit" else None
                store.decide_note(
                    case_id, status=NoteStatus.approved, actor=user, body=body, comment=decision.get("reason")
                )
                target = CaseStatus.closed if closing else CaseStatus.escalated
                store.move_case(
                    case_id,
                    target,
                    actor=user,
                    reason="note approved" if action == "approve" else "note edited and approved",
                )
                outcome = target.value
            elif action == "escalate":
                store.move_case(case_id, CaseStatus.escalated, actor=user, reason=decision.get("reason"))
                outcome = "escalated"
            else:  # reject
                store.decide_note(
                    case_id, status=NoteStatus.rejected, actor=user, comment=decision.get("reason")
                )
                store.move_case(case_id, CaseStatus.triaging, actor=user, reason=decision.get("reason"))
                outcome = "rejected"
                update |= {"reject_reason": (decision.get("reason") or "")[:500]}
                if state.get("drafts_made", 0) >= 2:  # one redraft only, then a person writes the note
                    request = dict(
                        state["approval_request"], allowed_actions=["edit", "escalate"], manual=True
                    )
                    update |= {"manual_only": True, "approval_request": request}
                    store.move_case(
                        case_id,
                        CaseStatus.awaiting_approval,
                        actor=ACTOR,
                        reason="draft rejected twice: waiting for a manual note",
                    )
        store.record_run_event(
            ctx.run_id,
            "run.finalize_case",
            case_id=case_id,
            actor=decision["user"] if decision else ACTOR,
            data={
                "step": step,
                "outcome": outcome,
                "action": decision["action"] if decision else "auto_close",
            },
        )
    return {"outcome": outcome, **update}


def route_after_finalize_case(state: TriageState) -> Literal["draft_note", "await_approval", "__end__"]:
    if state.get("outcome") != "rejected":
        return "__end__"
    return "await_approval" if state.get("manual_only") else "draft_note"


__all__ = [
    "apply_policy",
    "assess_case",
    "await_approval",
    "draft_note",
    "finalize_case",
    "gather_evidence",
    "map_attack",
    "route_after_apply_policy",
    "route_after_finalize_case",
]
