"""The log-triage graph: score_lines -> rank_lines -> (open_case) -> END."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from socflow.sdk import RunContext
from workflows.log_triage import nodes
from workflows.log_triage.state import LogTriageState


def build() -> StateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(LogTriageState, context_schema=RunContext)
    g.add_node("score_lines", nodes.score_lines)
    g.add_node("rank_lines", nodes.rank_lines)
    g.add_node("open_case", nodes.open_case)
    g.add_edge(START, "score_lines")
    g.add_edge("score_lines", "rank_lines")
    g.add_conditional_edges("rank_lines", nodes.route_after_rank_lines, ["open_case", END])
    g.add_edge("open_case", END)
    return g
