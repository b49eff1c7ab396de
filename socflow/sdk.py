"""The workflow SDK: what a workflow package exports, and what its nodes receive.

A workflow is a package (``state.py``, ``nodes.py``, ``graph.py``, ``prompts.py``) whose ``__init__``
exports one ``SPEC = WorkflowSpec(...)``. Nodes are plain functions ``(state, runtime) -> partial state``;
``runtime.context`` is a ``RunContext`` built by ``socflow.wiring`` and passed on every invoke and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from langgraph.graph import StateGraph
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from socflow.checkpoints import open_checkpointer
from socflow.evidence import EvidenceProvider
from socflow.model.base import CallContext, ModelClient
from socflow.policy import Policy

if TYPE_CHECKING:  # types only: the core never imports tools at run time (import-linter)
    from tools.attack.catalog import AttackCatalog
    from tools.siem.backend import SiemBackend


@dataclass(frozen=True)
class Deps:
    """Run dependencies built once per process from settings (``socflow.wiring.build_services``).

    ``siem`` and ``attack`` are tool objects (the SIEM backend, the ATT&CK catalog), typed by the tools'
    protocols for the type checker only: the platform core does not import ``tools`` at run time.
    ``evidence``: the evidence providers ``gather_evidence`` steps call (``socflow.evidence``).
    """

    factory: sessionmaker[Session]
    model: ModelClient | None
    siem: SiemBackend | None
    attack: AttackCatalog
    policy: Policy
    clock: Callable[[], datetime]
    evidence: tuple[EvidenceProvider, ...] = ()


@dataclass(frozen=True)
class RunContext:
    """LangGraph run context: the dependencies plus which run and case this is."""

    run_id: str
    case_id: int | None
    deps: Deps
    actor: str = "socflow"

    def call(self, node: str) -> CallContext:
        return CallContext(run_id=self.run_id, case_id=self.case_id, node=node)


@dataclass(frozen=True)
class WorkflowSpec:
    """What a workflow package exports.

    ``build()`` returns the uncompiled ``StateGraph`` (``context_schema=RunContext``); the runner
    compiles it with the checkpointer. ``initial_state(case_id, input)`` makes the first state.
    """

    name: str
    version: str
    description: str
    build: Callable[[], StateGraph[Any, Any, Any, Any]]
    input_schema: type[BaseModel] | None = None
    queue: str = "workflows"
    needs_case: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)
    output_keys: tuple[str, ...] = field(default_factory=tuple)  # final-state keys ``workflow run`` prints

    def initial_state(self, case_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
        if self.input_schema is not None:
            data = self.input_schema.model_validate(data).model_dump(mode="json")
        return {"case_id": case_id, **data}

    def mermaid(self) -> str:
        """The graph as a Mermaid diagram (``socflow workflow graph``; pinned by the snapshot tests)."""
        return self.build().compile().get_graph().draw_mermaid()

    def read_state(self, db_url: str, run_id: str) -> dict[str, Any]:
        """A run's latest checkpointed graph state (the run's thread id is its id)."""
        with open_checkpointer(db_url) as saver:
            graph = self.build().compile(checkpointer=saver)
            return dict(graph.get_state({"configurable": {"thread_id": run_id}}).values)

    @property
    def major(self) -> str:
        return self.version.split(".", 1)[0]
