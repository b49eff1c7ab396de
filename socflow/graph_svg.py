"""Workflow graphs drawn on the server as SVG (no JavaScript, no Mermaid bundle; fine under a strict CSP).

``graph_shape(spec)`` reads the compiled LangGraph graph's nodes and edges; ``render_svg`` lays the
nodes out in layers (longest path from ``__start__``, back edges ignored for layering) and draws the
edges as paths with arrowheads, loops back along the right-hand side. A run's path (the nodes it
executed, ``run_path``) is highlighted: those nodes and the edges between them get the class ``taken``.
Every label is XML-escaped; node names come from workflow code, never from alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["graph_shape", "render_svg", "run_path"]

NODE_W = 190
NODE_H = 34
GAP_X = 40
GAP_Y = 30
PAD = 20


def graph_shape(spec: Any) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [{"source", "target", "conditional"}]}`` of a workflow's graph."""
    graph = spec.build().compile().get_graph()
    return {
        "nodes": [str(n) for n in graph.nodes],
        "edges": [
            {"source": str(e.source), "target": str(e.target), "conditional": bool(e.conditional)}
            for e in graph.edges
        ],
    }


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: longest path from the start over the edges that do not close a cycle."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        out.setdefault(s, []).append(t)
    start = "__start__" if "__start__" in out else (nodes[0] if nodes else "")
    order: list[str] = []
    state: dict[str, int] = {}
    forward: list[tuple[str, str]] = []

    def visit(n: str) -> None:  # iterative-enough for workflow graphs (tens of nodes)
        state[n] = 1
        for m in out.get(n, []):
            if state.get(m) == 1:
                continue  # a back edge: ignored for layering
            forward.append((n, m))
            if m not in state:
                visit(m)
        state[n] = 2
        order.append(n)

    if start:
        visit(start)
    for n in nodes:
        if n not in state:
            visit(n)
    layer = {n: 0 for n in nodes}
    for n in reversed(order):
        for s, t in forward:
            if s == n:
                layer[t] = max(layer[t], layer[n] + 1)
    if "__end__" in layer:
        layer["__end__"] = max(layer.values()) if len(layer) > 1 else 0
        others = [v for k, v in layer.items() if k != "__end__"]
        layer["__end__"] = (max(others) + 1) if others else 0
    return layer


def render_svg(shape: dict[str, Any], *, taken: Iterable[str] = (), title: str = "workflow graph") -> str:
    """The graph as an inline SVG document (``<svg>`` element, no script, no style attribute)."""
    nodes: list[str] = list(shape["nodes"])
    edges = [(e["source"], e["target"], bool(e.get("conditional"))) for e in shape["edges"]]
    taken_set = set(taken)
    layer = _layers(nodes, [(s, t) for s, t, _ in edges])
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(layer[n], []).append(n)
    widest = max((len(r) for r in rows.values()), default=1)
    width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X + 60
    height = PAD * 2 + len(rows) * NODE_H + max(len(rows) - 1, 0) * GAP_Y
    pos: dict[str, tuple[float, float]] = {}
    for depth, members in rows.items():
        row_w = len(members) * NODE_W + (len(members) - 1) * GAP_X
        x0 = (width - 60 - row_w) / 2
        for i, n in enumerate(members):
            pos[n] = (x0 + i * (NODE_W + GAP_X), PAD + depth * (NODE_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for s, t, conditional in edges:
        if s not in pos or t not in pos:
            continue
        (sx, sy), (tx, ty) = pos[s], pos[t]
        classes = ["edge"]
        if conditional:
            classes.append("conditional")
        if s in taken_set and t in taken_set:
            classes.append("taken")
        if layer[t] > layer[s]:
            x1, y1 = sx + NODE_W / 2, sy + NODE_H
            x2, y2 = tx + NODE_W / 2, ty
            midy = (y1 + y2) / 2
            d = f"M {x1:.0f} {y1:.0f} C {x1:.0f} {midy:.0f}, {x2:.0f} {midy:.0f}, {x2:.0f} {y2:.0f}"
        else:  # a loop back up: out of the right side, up along the margin, into the target's right side
            x1, y1 = sx + NODE_W, sy + NODE_H / 2
            x2, y2 = tx + NODE_W, ty + NODE_H / 2
            bend = max(x1, x2) + 30 + 8 * (layer[s] - layer[t])
            d = f"M {x1:.0f} {y1:.0f} C {bend:.0f} {y1:.0f}, {bend:.0f} {y2:.0f}, {x2:.0f} {y2:.0f}"
        parts.append(
            f'<path class="{" ".join(classes)}" d="{d}" marker-end="url(#arrow)" '
            f'data-source="{escape(s)}" data-target="{escape(t)}"/>'
        )
    for n in nodes:
        x, y = pos[n]
        classes = ["node"]
        if n in ("__start__", "__end__"):
            classes.append("terminal")
        if n in taken_set:
            classes.append("taken")
        label = {"__start__": "start", "__end__": "end"}.get(n, n)
        parts.append(
            f'<g class="{" ".join(classes)}" data-node="{escape(n)}">'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text x="{x + NODE_W / 2:.0f}" y="{y + NODE_H / 2 + 4:.0f}" text-anchor="middle">'
            f"{escape(label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def run_path(saver: Any, run_id: str) -> list[str]:
    """The nodes a run executed, in order, and the node it waits in (an interrupt), read from its
    LangGraph checkpoints (thread id = run id)."""
    seen: list[str] = []
    tuples = list(saver.list({"configurable": {"thread_id": run_id}}))
    for tup in reversed(tuples):  # oldest first
        for name in tup.checkpoint.get("versions_seen") or {}:
            if name not in seen and name != "__input__":
                seen.append(name)
    if (
        tuples
    ):  # where the run stands now: nodes scheduled (a branch written) but not yet run, e.g. an interrupt
        latest = tuples[0].checkpoint
        versions = latest.get("channel_versions") or {}
        seen_by = latest.get("versions_seen") or {}
        for channel, version in versions.items():
            if not str(channel).startswith("branch:to:"):
                continue
            node = str(channel).removeprefix("branch:to:")
            if (seen_by.get(node) or {}).get(channel) != version and node not in seen:
                seen.append(node)
    if seen and "__start__" not in seen:
        seen.insert(0, "__start__")
    return seen
