"""Nodes of the incident-report graph: plain functions ``(state, runtime) -> partial state``.

Facts come from code (impacted hosts and users from alert entities, techniques from the ATT&CK catalog,
actions from the audit log); the model writes the summary, the timeline and the recommendations, and every
model-written part passes the note checker (citations, technique names, action claims) or is redrafted
once with the findings, then falls back to evidence-only text. Every node is a ``@run_step`` (re-run
safe); the approval part is ``socflow.hitl``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from langgraph.runtime import Runtime
from pydantic import BaseModel

from socflow.casework import alert_evidence, load_case
from socflow.enums import AuthorKind
from socflow.errors import StructuredOutputError
from socflow.hitl import apply_note_decision, request_approval
from socflow.schemas import EvidenceRecord, TechniqueRecord
from socflow.sdk import RunContext, TechniqueState, technique_state
from socflow.steps import run_step, step_writes
from socflow.store import CaseStore
from socflow.tables import Alert, Case, Evidence
from tools.attack import MappingInput, map_techniques
from tools.attack.mapper import EvidenceText
from tools.notes import (
    EvidenceItem,
    NoteInput,
    NoteSections,
    RecordedAction,
    ValidatedTechnique,
    actions_from_audit,
)
from tools.notes.checker import check_sections
from tools.notes.render import fallback_sections
from workflows.incident_report.prompts import evidence_block, plan_messages, summary_messages
from workflows.incident_report.render import ReportParts, render_report
from workflows.incident_report.state import (
    ImpactedEntry,
    ImpactedState,
    IncidentState,
    IncidentSummary,
    PlanState,
    ResponsePlan,
    SummaryState,
    TacticGroup,
)

ACTOR = "socflow:incident_report"
NOTE_KIND = "incident_report"
MAX_ALERTS = 50
MAX_EVIDENCE = 40
MAX_MAPPED_ALERTS = 12
M = TypeVar("M", bound=BaseModel)


def _load(ctx: RunContext, case_id: int) -> tuple[Case, list[Alert], list[Evidence]]:
    snap = load_case(ctx.deps.factory, case_id, max_alerts=MAX_ALERTS)
    return snap.case, snap.alerts, snap.evidence


def _as_row(record: EvidenceRecord) -> Evidence:
    """An evidence record not stored yet, as a detached row (its summary and time are all nodes read)."""
    return Evidence(**record.model_dump())


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
    actions: Sequence[RecordedAction] = (),
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


@run_step
def summarize_case(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
    ctx = runtime.context
    case_id = state["case_id"]
    case, alerts, stored = _load(ctx, case_id)
    records = [alert_evidence(a) for a in alerts]
    known = {e.evidence_id for e in stored}
    evidence = stored + [_as_row(r) for r in records if r.evidence_id not in known]
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
    summary: SummaryState
    if answer is not None:
        summary = {"summary": list(answer.summary), "timeline": list(answer.timeline), "status": "valid"}
    else:
        fb = fallback_sections(
            NoteInput(case_id=case_id, title=case.title, severity=case.severity), _items(ordered)
        )
        refs = f" [{', '.join(labels)}]" if labels else ""
        text = f"The incident has {len(labels)} evidence item(s), severity {case.severity}{refs}."
        summary = {"summary": [text], "timeline": fb.timeline, "status": "fallback", "findings": findings}
    with step_writes(runtime) as tx:
        tx.store.add_evidence(case_id, records, actor=ACTOR)
        update: IncidentState = {"evidence_ids": ids, "summary": summary}
        return tx.done(update)


@run_step
def identify_impacted(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
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

    def entries(kind: str) -> list[ImpactedEntry]:
        return [{"name": name, "labels": cites} for name, cites in sorted(found[kind].items())]

    impacted: ImpactedState = {"hosts": entries("hosts"), "users": entries("users")}
    return {"impacted": impacted}


@run_step
def map_attack(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
    """Validated techniques per alert (the model chooses among catalog candidates), grouped by tactic."""
    ctx = runtime.context
    case_id = state["case_id"]
    _, alerts, _ = _load(ctx, case_id)
    by_id: dict[str, TechniqueState] = {}
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
                by_id[t.technique_id] = technique_state(t.model_dump(mode="json") | {"evidence_ids": merged})
            else:
                current["evidence_ids"] = sorted({*current["evidence_ids"], *t.evidence_ids})
    techniques = list(by_id.values())
    tactics: list[TacticGroup] = [
        {
            "tactic": tactic.name,
            "techniques": [t["technique_id"] for t in techniques if tactic.name in t["tactics"]],
        }
        for tactic in ctx.deps.attack.tactics
    ]
    with step_writes(runtime) as tx:
        tx.store.add_techniques(case_id, [TechniqueRecord.model_validate(t) for t in techniques], actor=ACTOR)
        update: IncidentState = {"techniques": techniques, "tactics": [t for t in tactics if t["techniques"]]}
        return tx.done(update)


def impacted_lines(impacted: ImpactedState) -> list[str]:
    lines = [f"Host {e['name']} [{', '.join(e['labels'])}]" for e in impacted.get("hosts", [])]
    return lines + [f"User {e['name']} [{', '.join(e['labels'])}]" for e in impacted.get("users", [])]


def _techniques(state: IncidentState) -> list[ValidatedTechnique]:
    return [ValidatedTechnique.model_validate(t) for t in state.get("techniques", [])]


@run_step
def plan_response(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
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
    plan: PlanState
    if answer is not None:
        plan = {
            "remediation": list(answer.remediation),
            "next_steps": list(answer.next_steps),
            "status": "valid",
        }
        return {"plan": plan}
    hosts = [e["name"] for e in state["impacted"].get("hosts", [])]
    users = [e["name"] for e in state["impacted"].get("users", [])]
    remediation = [
        f"Review host {h} for persistence and rebuild it if compromise is confirmed." for h in hosts
    ]
    remediation += [f"Reset the credentials of user {u} and review its recent sessions." for u in users]
    plan = {
        "remediation": remediation[:6] or ["Review the evidence and decide the remediation by hand."],
        "next_steps": ["Review the evidence items listed in this report and confirm the scope."],
        "status": "fallback",
        "findings": findings,
    }
    return {"plan": plan}


@run_step
def draft_report(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
    """Render the full report, check it as a whole, store it as a draft; the approval request follows."""
    ctx = runtime.context
    case_id = state["case_id"]
    case, _, evidence = _load(ctx, case_id)
    items = _items(_ordered(evidence, state["evidence_ids"]))
    labels = list(_labels(state["evidence_ids"]))
    techniques = _techniques(state)
    with ctx.deps.factory() as session:
        actions = actions_from_audit(CaseStore(session).list_audit(case_id=case_id, action="action.recorded"))
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
    model = ctx.deps.model
    with step_writes(runtime) as tx:
        revision = tx.store.draft_note(
            case_id,
            body,
            author=model.model_id if model is not None else "socflow",
            author_kind=AuthorKind.model if model is not None else AuthorKind.system,
            kind=NOTE_KIND,
        ).revision
        request = request_approval(
            state,
            ctx,
            note_kind=NOTE_KIND,
            revision=revision,
            evidence_ids=state["evidence_ids"],
            techniques=[t.technique_id for t in techniques],
            findings=findings,
        )
        update: IncidentState = {"report": {"revision": revision, "findings": findings}, **request}
        return tx.done(update)


@run_step
def finalize_report(state: IncidentState, runtime: Runtime[RunContext]) -> IncidentState:
    with step_writes(runtime) as tx:
        return tx.done(apply_note_decision(tx, state, note_kind=NOTE_KIND, actor=ACTOR))


__all__ = [
    "draft_report",
    "finalize_report",
    "identify_impacted",
    "map_attack",
    "plan_response",
    "summarize_case",
]
