"""The incident-report graph (the vendor cookbook's end-to-end investigation).

summarize_case -> identify_impacted -> map_attack -> plan_response -> draft_report -> await_approval
-> finalize_report -> END, or back to summarize_case once after a reject (then a manual report).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from socflow.hitl import await_approval, route_after_decision
from socflow.sdk import RunContext
from workflows.incident_report import nodes
from workflows.incident_report.state import IncidentState


def build() -> StateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(IncidentState, context_schema=RunContext)
    g.add_node("summarize_case", nodes.summarize_case)
    g.add_node("identify_impacted", nodes.identify_impacted)
    g.add_node("map_attack", nodes.map_attack)
    g.add_node("plan_response", nodes.plan_response)
    g.add_node("draft_report", nodes.draft_report)
    g.add_node("await_approval", await_approval)
    g.add_node("finalize_report", nodes.finalize_report)
    g.add_edge(START, "summarize_case")
    g.add_edge("summarize_case", "identify_impacted")
    g.add_edge("identify_impacted", "map_attack")
    g.add_edge("map_attack", "plan_response")
    g.add_edge("plan_response", "draft_report")
    g.add_edge("draft_report", "await_approval")
    g.add_edge("await_approval", "finalize_report")
    g.add_conditional_edges(
        "finalize_report", route_after_decision("summarize_case"), ["summarize_case", "await_approval", END]
    )
    return g
