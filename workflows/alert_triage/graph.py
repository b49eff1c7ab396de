"""The alert-triage graph.

gather_evidence -> map_attack -> assess_case -> apply_policy -> (auto-close) -> finalize_case
                                                             -> draft_note -> await_approval -> finalize_case
finalize_case -> END, or back to draft_note once after a reject, or to await_approval for a manual note.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from socflow.hitl import await_approval, route_after_decision
from socflow.sdk import RunContext
from workflows.alert_triage import nodes
from workflows.alert_triage.state import TriageState


def build() -> StateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(TriageState, context_schema=RunContext)
    g.add_node("gather_evidence", nodes.gather_evidence)
    g.add_node("map_attack", nodes.map_attack)
    g.add_node("assess_case", nodes.assess_case)
    g.add_node("apply_policy", nodes.apply_policy)
    g.add_node("draft_note", nodes.draft_note)
    g.add_node("await_approval", await_approval)
    g.add_node("finalize_case", nodes.finalize_case)
    g.add_edge(START, "gather_evidence")
    g.add_edge("gather_evidence", "map_attack")
    g.add_edge("map_attack", "assess_case")
    g.add_edge("assess_case", "apply_policy")
    g.add_conditional_edges("apply_policy", nodes.route_after_apply_policy, ["draft_note", "finalize_case"])
    g.add_edge("draft_note", "await_approval")
    g.add_edge("await_approval", "finalize_case")
    g.add_conditional_edges(
        "finalize_case", route_after_decision("draft_note"), ["draft_note", "await_approval", END]
    )
    return g
