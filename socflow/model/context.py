"""Who is calling: the explicit ``CallContext`` wins, LangGraph's run config fills the gaps.

Inside a graph node, ``langgraph.config.get_config()`` carries ``metadata["langgraph_node"]`` (the node name)
and the ``configurable`` values the run was started with (socflow passes ``run_id`` and ``case_id`` there).
Outside a graph there is no config and the context stays as given.
"""

from __future__ import annotations

from typing import Any

from socflow.model.base import CallContext


def _graph_config() -> dict[str, Any] | None:
    try:
        from langgraph.config import get_config
    except ImportError:  # pragma: no cover - langgraph is a core dependency
        return None
    try:
        return dict(get_config())
    except RuntimeError:  # not inside a runnable context
        return None


def resolve_context(ctx: CallContext | None) -> CallContext:
    ctx = ctx or CallContext()
    if ctx.node is not None and ctx.run_id is not None and ctx.case_id is not None:
        return ctx
    config = _graph_config()
    if not config:
        return ctx
    metadata = config.get("metadata") or {}
    configurable = config.get("configurable") or {}
    node = ctx.node if ctx.node is not None else metadata.get("langgraph_node")
    run_id = ctx.run_id if ctx.run_id is not None else configurable.get("run_id")
    case_id = ctx.case_id if ctx.case_id is not None else configurable.get("case_id")
    return CallContext(
        run_id=str(run_id) if run_id is not None else None,
        case_id=int(case_id) if isinstance(case_id, int | str) and str(case_id).isdigit() else None,
        node=str(node) if node is not None else None,
    )
