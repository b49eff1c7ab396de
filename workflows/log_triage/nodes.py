"""Nodes of the log-triage graph: score every line with ``score_labels``, rank, open a case if needed.

Scores are label log-likelihoods (``benign`` vs ``malicious``), never a number the model writes. The case
is created through the ``CaseStore`` with one evidence item per flagged line. Every node is a
``@run_step``: a re-run after a crash returns what the first attempt committed (the case it opened).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from langgraph.runtime import Runtime

from socflow.errors import ConfigError
from socflow.schemas import EvidenceRecord
from socflow.sdk import RunContext
from socflow.steps import run_step, step_writes
from workflows.log_triage.prompts import LABELS, classify_messages
from workflows.log_triage.state import LogTriageState, RankedLine

ACTOR = "socflow:log_triage"
MAX_EVIDENCE = 200


@run_step
def score_lines(state: LogTriageState, runtime: Runtime[RunContext]) -> LogTriageState:
    ctx = runtime.context
    model = ctx.deps.model
    if model is None:
        raise ConfigError("log_triage scores lines with the model: configure SOCFLOW_MODEL__BACKEND")
    scores = []
    for line in state["lines"]:
        result = model.score_labels(classify_messages(line), LABELS, ctx=ctx.call("score_lines"))
        scores.append(round(float(result.get("malicious", 0.0)), 6))
    return {"scores": scores}


@run_step
def rank_lines(state: LogTriageState, runtime: Runtime[RunContext]) -> LogTriageState:
    order = sorted(range(len(state["lines"])), key=lambda i: (-state["scores"][i], i))
    ranked: list[RankedLine] = [
        {"index": i, "line": state["lines"][i], "score": state["scores"][i]} for i in order
    ]
    flagged = [r["index"] for r in ranked if r["score"] >= state["threshold"]]
    return {"ranked": ranked, "flagged": flagged}


def route_after_rank_lines(state: LogTriageState) -> Literal["open_case", "__end__"]:
    return "open_case" if state.get("flagged") else "__end__"


def _line_evidence(run_id: str, index: int, line: str, score: float) -> EvidenceRecord:
    digest = hashlib.sha256(f"log_line\x1f{run_id}\x1f{index}\x1f{line}".encode()).hexdigest()[:32]
    return EvidenceRecord(
        evidence_id=digest,
        kind="log_line",
        source_event_id=f"line {index + 1}",
        summary=f"log line {index + 1} (malicious score {score:.2f}): {line[:3900]}",
        data={"line": line, "index": index, "score": score},
    )


@run_step
def open_case(state: LogTriageState, runtime: Runtime[RunContext]) -> LogTriageState:
    ctx = runtime.context
    scores, lines = state["scores"], state["lines"]
    records = [_line_evidence(ctx.run_id, i, lines[i], scores[i]) for i in state["flagged"][:MAX_EVIDENCE]]
    title = f"{state['title']} ({len(state['flagged'])} of {len(lines)} lines)"
    with step_writes(runtime) as tx:
        case_id = tx.store.create_case(title=title, severity=state["severity"], actor=ACTOR).id
        tx.store.add_evidence(case_id, records, actor=ACTOR)
        tx.store.record_run_event(
            ctx.run_id,
            "run.case_opened",
            case_id=case_id,
            actor=ACTOR,
            data={"lines": len(lines), "flagged": len(state["flagged"]), "threshold": state["threshold"]},
        )
        update: LogTriageState = {"case_id": case_id, "evidence_ids": [r.evidence_id for r in records]}
        return tx.done(update)


__all__ = ["open_case", "rank_lines", "route_after_rank_lines", "score_lines"]
