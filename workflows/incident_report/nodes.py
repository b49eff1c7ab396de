"""Nodes of the incident-report graph: plain functions ``(state, runtime) -> partial state``.

Facts come from code (impacted hosts and users from alert entities, techniques from the ATT&CK catalog,
actions from the audit log); the model writes the summary, the timeline and the recommendations, and every
model-written part passes the note checker (citations, technique names, action claims) or is redrafted
once with the findings, then falls back to evidence-only text. Nodes are idempotent on re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel

from socflow.casework import alert_evidence, load_case
from socflow.enums import CASE_TRANSITIONS, CaseStatus, NoteStatus
from socflow.errors import StructuredOutputError
from socflow.schemas import TechniqueRecord
from socflow.sdk import RunContext
from socflow.store import CaseStore
from socflow.tables import Alert, Case, Evidence
from tools.attack import MappingInput, map_techniques
from tools.attack.mapper import EvidenceText
from tools.notes import EvidenceItem, NoteInput, NoteSections, ValidatedTechnique, actions_from_audit
from tools.notes.checker import check_sections
from tools.notes.render import fallback_sections
from workflows.incident_report.prompts import evidence_block, plan_messages, summary_messages
from workflows.incident_report.render import ReportParts, render_report
from workflows.incident_report.state import IncidentState, IncidentSummary, ResponsePlan

ACTOR = "socflow:incident_report"
NOTE_KIND = "incident_report"
MAX_ALERTS = 50
MAX_EVIDENCE = 40
MAX_MAPPED_ALERTS = 12
M = TypeVar("M", bound=BaseModel)


def _load(ctx: RunContext, case_id: int) -> tuple[Case, list[Alert], list[Evidence]]:
    snap = load_case(ctx.deps.factory, case_id, max_alerts=MAX_ALERTS)
    return snap.case, snap.alerts, snap.evidence


def _ordered(evidence: list[Evidence], ids: Sequence[str]) -> list[Evidence]:
    by_id = {e.evidence_id: e for e in evidence}
    return [by_id[i] for i in ids if i in by_id]


def _labels(ids: Sequence[str]) -> dict[str, str]:
    return {f"E{i}": eid for i, eid in enumerate(ids, start=1)}


def _items(evidence: Sequence[Evidence]) -> list[EvidenceItem]:
    out = []
    for e in evidence:
        data = e.data or {}
        ents = data.get("entities") or {}
        hosts = ents.get("hosts") or ([data["host"]] if data.get("host") else [])
        users = ents.get("users") or ([data["user"]] if data.get("user") else [])
        out.append(
            EvidenceItem(
                evidence_id=e.evidence_id,
                summary=e.summary,
                timestamp=e.observed_at,
                hosts=hosts,
                users=users,
            )
        )
    return out


def _findings(
    ctx: RunContext,
    labels: Sequence[str],
    *,
    summary: Sequence[str] = (),
    impacted: Sequence[str] = (),
    timeline: Sequence[str] = (),
    next_steps: Sequence[str] = (),
    techniques: Sequence[ValidatedTechnique] = (),
    only: Sequence[str] = ("summary", "impacted", "timeline", "next_steps"),
    actions: Sequence[Any] = (),
) -> list[str]:
    """The note checker's findings on the given parts (``only`` those sections), as lines."""
    sections = NoteSections.model_construct(
        summary=list(summary), impacted=list(impacted), timeline=list(timeline), next_steps=list(next_steps)
    )
    found = check_sections(
        sections, evidence_labels=labels, techniques=techniques, actions=actions, catalog=ctx.deps.attack
    )
    return [f.line() for f in found if f.section in only]


def _two_tries(ask: Callable[[list[str]], M], check: Callable[[M], list[str]]) -> tuple[M | None, list[str]]:
    """Ask, check, ask again once with the findings; ``(None, findings)`` when both answers fail."""
    findings: list[str] = []
    for _ in range(2):
        try:
            answer = ask(findings)
        except StructuredOutputError:
            findings = ["model_error: the reply did not match the schema"]
            continue
        findings = check(answer)
        if not findings:
            return answer, []
    return None, findings


def summarize_case(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    case, alerts, _ = _load(ctx, case_id)
    records = [alert_evidence(a) for a in alerts]
    with ctx.deps.factory() as session, session.begin():
        store = CaseStore(session)
        store.add_evidence(case_id, records, actor=ACTOR)
        evidence = store.list_evidence(case_id)
        session.expunge_all()
    first = [r.evidence_id for r in records]
    rest = sorted(
        (e for e in evidence if e.evidence_id not in set(first)),
        key=lambda e: (e.observed_at is None, e.observed_at.isoformat() if e.observed_at else "", e.id),
    )
    ids = (first + [e.evidence_id for e in rest])[:MAX_EVIDENCE]
    ordered = _ordered(evidence, ids)
    labels = list(_labels(ids))
    block = evidence_block(case.title, [e.summary for e in ordered])
    model = ctx.deps.model
    answer: IncidentSummary | None = None
    findings: list[str] = []
    if model is not None:
        answer, findings = _two_tries(
            lambda f: model.generate_structured(
                summary_messages(block, f, state.get("reject_reason")),
                IncidentSummary,
                ctx=ctx.call("summarize_case"),
            ),
            lambda a: _findings(
                ctx, labels, summary=a.summary, timeline=a.timeline, only=("summary", "timeline")
            ),
        )
    if answer is not None:
        summary = {"summary": list(answer.summary), "timeline": list(answer.timeline), "status": "valid"}
    else:
        fb = fallback_sections(
            NoteInput(case_id=case_id, title=case.title, severity=case.severity), _items(ordered)
        )
        refs = f" [{', '.join(labels)}]" if labels else ""
        text = f"The incident has {len(labels)} evidence item(s), severity {case.severity}{refs}."
        summary = {"summary": [text], "timeline": fb.timeline, "status": "fallback", "findings": findings}
    return {"evidence_ids": ids, "summary": summary}


def identify_impacted(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Hosts and users from the evidence's entities (code, not the model), each with its citations."""
    ctx = runtime.context
    _, _, evidence = _load(ctx, state["case_id"])
    items = _items(_ordered(evidence, state["evidence_ids"]))
    found: dict[str, dict[str, list[str]]] = {"hosts": {}, "users": {}}
    for i, item in enumerate(items, start=1):
        for kind, names in (("hosts", item.hosts), ("users", item.users)):
            for name in names:
                cites = found[kind].setdefault(str(name)[:200], [])
                if f"E{i}" not in cites:
                    cites.append(f"E{i}")
    return {
        "impacted": {
            kind: [{"name": name, "labels": cites} for name, cites in sorted(entries.items())]
            for kind, entries in found.items()
        }
    }


def map_attack(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Validated techniques per alert (the model chooses among catalog candidates), grouped by tactic."""
    ctx = runtime.context
    case_id = state["case_id"]
    _, alerts, _ = _load(ctx, case_id)
    by_id: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for alert in alerts:
        key = alert.rule_id or alert.title
        if key in seen or len(seen) >= MAX_MAPPED_ALERTS:
            continue
        seen.add(key)
        own = alert_evidence(alert)
        result = map_techniques(
            MappingInput(
                text=f"{alert.title}. {alert.description or ''}"[:4000],
                rule_tags=list(alert.rule_tags or []),
                evidence=[EvidenceText(evidence_id=own.evidence_id, text=own.summary)],
            ),
            model=ctx.deps.model,
            catalog=ctx.deps.attack,
            ctx=ctx.call("map_attack"),
        )
        for t in result.techniques:
            current = by_id.get(t.technique_id)
            if current is None or t.confidence > current["confidence"]:
                merged = sorted({*t.evidence_ids, *(current["evidence_ids"] if current else [])})
                by_id[t.technique_id] = t.model_dump(mode="json") | {"evidence_ids": merged}
            else:
                current["evidence_ids"] = sorted({*current["evidence_ids"], *t.evidence_ids})
    techniques = list(by_id.values())
    with ctx.deps.factory() as session, session.begin():
        CaseStore(session).add_techniques(
            case_id, [TechniqueRecord.model_validate(t) for t in techniques], actor=ACTOR
        )
    tactics = [
        {
            "tactic": tactic.name,
            "techniques": [t["technique_id"] for t in techniques if tactic.name in t["tactics"]],
        }
        for tactic in ctx.deps.attack.tactics
    ]
    return {"techniques": techniques, "tactics": [t for t in tactics if t["techniques"]]}


def impacted_lines(impacted: dict[str, Any]) -> list[str]:
    lines = []
    for kind, word in (("hosts", "Host"), ("users", "User")):
        for entry in impacted.get(kind, []):
            lines.append(f"{word} {entry['name']} [{', '.join(entry['labels'])}]")
    return lines


def _techniques(state: IncidentState) -> list[ValidatedTechnique]:
    return [ValidatedTechnique.model_validate(t) for t in state.get("techniques", [])]


def plan_response(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    labels = list(_labels(state["evidence_ids"]))
    techniques = _techniques(state)
    impacted = impacted_lines(state["impacted"])
    tech_lines = [f"{t.technique_id} {t.name} ({', '.join(t.tactics)})" for t in techniques]
    model = ctx.deps.model
    answer: ResponsePlan | None = None
    findings: list[str] = []
    if model is not None:
        answer, findings = _two_tries(
            lambda f: model.generate_structured(
                plan_messages(
                    state["summary"]["summary"], impacted, tech_lines, f, state.get("reject_reason")
                ),
                ResponsePlan,
                ctx=ctx.call("plan_response"),
            ),
            lambda a: _findings(
                ctx,
                labels,
                next_steps=[*a.remediation, *a.next_steps],
                techniques=techniques,
                only=("next_steps",),
            ),
        )
    if answer is not None:
        return {
            "plan": {"remediation": answer.remediation, "next_steps": answer.next_steps, "status": "valid"}
        }
    hosts = [e["name"] for e in state["impacted"].get("hosts", [])]
    users = [e["name"] for e in state["impacted"].get("users", [])]
    remediation = [
        f"Review host {h} for persistence and rebuild it if compromise is confirmed." for h in hosts
    ]
    remediation += [f"Reset the credentials of user {u} and review its recent sessions." for u in users]
    return {
        "plan": {
            "remediation": remediation[:6] or ["Review the evidence and decide the remediation by hand."],
            "next_steps": ["Review the evidence items listed in this report and confirm the scope."],
            "status": "fallback",
            "findings": findings,
        }
    }


def draft_report(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Render the full report, check it as a whole, store it as a draft; the approval request follows."""
    ctx = runtime.context
    case_id = state["case_id"]
    n = state.get("drafts_made", 0) + 1
    marker = f"run {ctx.run_id} report {n}"
    case, _, evidence = _load(ctx, case_id)
    items = _items(_ordered(evidence, state["evidence_ids"]))
    labels = list(_labels(state["evidence_ids"]))
    techniques = _techniques(state)
    with ctx.deps.factory() as session:
        store = CaseStore(session)
        actions = actions_from_audit(store.list_audit(case_id=case_id, action="action.recorded"))
        existing = store.find_revision(case_id, comment=marker, kind=NOTE_KIND)
    summary, plan = state["summary"], state["plan"]
    impacted = impacted_lines(state["impacted"])
    findings = _findings(
        ctx,
        labels,
        summary=summary["summary"],
        impacted=impacted,
        timeline=summary["timeline"],
        next_steps=[*plan["remediation"], *plan["next_steps"]],
        techniques=techniques,
        actions=actions,
    )
    if existing is None:
        body = render_report(
            ReportParts(
                case_id=case_id,
                title=case.title,
                severity=case.severity,
                summary=summary["summary"],
                impacted=impacted,
                tactics=state.get("tactics", []),
                techniques=techniques,
                timeline=summary["timeline"],
                actions=actions,
                remediation=plan["remediation"],
                next_steps=plan["next_steps"],
                evidence=items,
                fallback=summary["status"] == "fallback" or plan["status"] == "fallback",
                findings=findings,
            )
        )
        author = ctx.deps.model.model_id if ctx.deps.model is not None else "socflow"
        with ctx.deps.factory() as session, session.begin():
            CaseStore(session).draft_note(
                case_id,
                body,
                author=author,
                author_kind="model" if ctx.deps.model is not None else "system",
                kind=NOTE_KIND,
                comment=marker,
            )
    with ctx.deps.factory() as session:
        note = CaseStore(session).get_note(case_id, kind=NOTE_KIND)
        revision = note.current_revision if note else 0
    return {
        "drafts_made": n,
        "report": {"revision": revision, "findings": findings},
        "approval_request": {
            "kind": NOTE_KIND,
            "case_id": case_id,
            "run_id": ctx.run_id,
            "note_revision": revision,
            "evidence_ids": state["evidence_ids"],
            "techniques": [t.technique_id for t in techniques],
            "findings": findings,
            "allowed_actions": ["approve", "edit", "reject", "escalate"],
        },
    }


def await_approval(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    return {"decision": interrupt(state["approval_request"])}


def finalize_report(state: IncidentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    case_id = state["case_id"]
    decision = state["decision"]
    user, action = decision["user"], decision["action"]
    step = state.get("finalized", 0) + 1
    update: dict[str, Any] = {"finalized": step}
    with ctx.deps.factory() as session, session.begin():
        store = CaseStore(session)
        done = store.find_run_step(ctx.run_id, "run.finalize_report", step)
        if done is not None:  # re-run after a crash: the step committed atomically before it
            return done
        if action in ("approve", "edit"):
            body = decision.get("body") if action == "edit" else None
            store.decide_note(
                case_id,
                status=NoteStatus.approved,
                actor=user,
                body=body,
                comment=decision.get("reason"),
                kind=NOTE_KIND,
            )
            update["outcome"] = "approved"
        elif action == "escalate":
            current = CaseStatus(store.get_case(case_id).status)
            if CaseStatus.escalated in CASE_TRANSITIONS[current]:
                store.move_case(case_id, CaseStatus.escalated, actor=user, reason=decision.get("reason"))
            update["outcome"] = "escalated"
        else:  # reject: one redraft carrying the reason, then a person writes the report
            store.decide_note(
                case_id,
                status=NoteStatus.rejected,
                actor=user,
                comment=decision.get("reason"),
                kind=NOTE_KIND,
            )
            update |= {"outcome": "rejected", "reject_reason": (decision.get("reason") or "")[:500]}
            if state.get("drafts_made", 0) >= 2:
                request = dict(state["approval_request"], allowed_actions=["edit", "escalate"], manual=True)
                update |= {"manual_only": True, "approval_request": request}
        store.record_run_event(
            ctx.run_id,
            "run.finalize_report",
            case_id=case_id,
            actor=user,
            data={"step": step, "action": action, "update": update},
        )
    return update


def route_after_finalize_report(
    state: IncidentState,
) -> Literal["summarize_case", "await_approval", "__end__"]:
    if state.get("outcome") != "rejected":
        return "__end__"
    return "await_approval" if state.get("manual_only") else "summarize_case"


__all__ = [
    "await_approval",
    "draft_report",
    "finalize_report",
    "identify_impacted",
    "map_attack",
    "plan_response",
    "route_after_finalize_report",
    "summarize_case",
]
