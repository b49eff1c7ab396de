"""The workflow SDK: what a workflow package exports, and what its nodes receive.

A workflow is a package (``state.py``, ``nodes.py``, ``graph.py``, ``prompts.py``) whose ``__init__``
exports one ``SPEC = WorkflowSpec(...)``. Nodes are plain functions ``(state, runtime) -> partial state``;
``runtime.context`` is a ``RunContext`` built by ``socflow.wiring`` and passed on every invoke and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from langgraph.graph import StateGraph
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import TypedDict

from socflow.actions.catalog import Catalog
from socflow.calibration import Calibration
from socflow.checkpoints import open_checkpointer
from socflow.enums import DEFAULT_NOTE_KIND
from socflow.evidence import EvidenceProvider
from socflow.model.base import CallContext, ModelClient
from socflow.policy import Policy
from socflow.schemas import AlertIn


class TechniqueState(TypedDict):
    """A validated ATT&CK technique in graph state (a ``case_techniques`` row's fields, JSON-plain)."""

    technique_id: str
    name: str
    tactics: list[str]
    confidence: float
    source: str
    evidence_ids: list[str]


def technique_state(data: dict[str, object]) -> TechniqueState:
    """A mapped technique (its JSON dump) as graph state."""
    tactics = data.get("tactics")
    evidence = data.get("evidence_ids")
    confidence = data.get("confidence")
    return {
        "technique_id": str(data["technique_id"]),
        "name": str(data["name"]),
        "tactics": [str(t) for t in tactics] if isinstance(tactics, list) else [],
        "confidence": float(confidence) if isinstance(confidence, int | float) else 0.0,
        "source": str(data["source"]),
        "evidence_ids": [str(e) for e in evidence] if isinstance(evidence, list) else [],
    }


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
    calibration: Calibration | None = None  # the active model's fitted confidence calibration
    actions: Catalog = field(default_factory=Catalog.empty)  # the enabled response actions


@dataclass(frozen=True)
class RunContext:
    """LangGraph run context: the dependencies plus which run and case this is."""

    run_id: str
    case_id: int | None
    deps: Deps
    actor: str = "socflow"
    # The run's recorded steps, ``(node, visit key) -> update``, read once when the runner claimed the run
    # (it holds the run's lease, so nobody else records steps meanwhile); ``@run_step`` adds the steps it
    # records. None (a graph invoked outside the runner): ``@run_step`` reads ``run_steps`` per node.
    steps: dict[tuple[str, str], dict[str, Any]] | None = None
    # What the nodes of one drive share (``socflow.casework.case_and_alerts``: the case and its alerts are
    # read once per drive, not once per node). Lives as long as this context: one ``advance``/``resume``.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def call(self, node: str) -> CallContext:
        return CallContext(run_id=self.run_id, case_id=self.case_id, node=node)


class TriggerKind(StrEnum):
    all_cases = "all_cases"  # every new case, and every alert that joins one
    source = "source"  # alerts whose ``source`` equals ``value``
    rule_tag = "rule_tag"  # alerts whose rule tags include ``value`` (case-insensitive)
    field = "field"  # alerts whose field at the dotted ``path`` equals ``value`` (or, a list, holds it)


@dataclass(frozen=True)
class Trigger:
    """What starts a workflow on a case: evaluated on the alert that opens a case and on each alert that
    joins one (``docs/workflows.md``). Build one with ``Trigger.all_cases()``, ``Trigger.source("edr")``,
    ``Trigger.rule_tag("attack.t1059")`` or ``Trigger.field("entities.hosts", "DC1")``."""

    kind: TriggerKind
    value: str | None = None
    path: str | None = None

    @classmethod
    def all_cases(cls) -> Trigger:
        return cls(TriggerKind.all_cases)

    @classmethod
    def source(cls, source: str) -> Trigger:
        return cls(TriggerKind.source, value=source)

    @classmethod
    def rule_tag(cls, tag: str) -> Trigger:
        return cls(TriggerKind.rule_tag, value=tag.lower())

    @classmethod
    def field(cls, path: str, value: str) -> Trigger:
        return cls(TriggerKind.field, value=value, path=path)

    def matches(self, alert: AlertIn) -> bool:
        if self.kind is TriggerKind.all_cases:
            return True
        if self.kind is TriggerKind.source:
            return alert.source == self.value
        if self.kind is TriggerKind.rule_tag:
            return any(tag.lower() == self.value for tag in alert.rule.tags)
        found: Any = alert.model_dump(mode="json")
        for part in (self.path or "").split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if isinstance(found, list):
            return self.value in [str(v) for v in found]
        return found is not None and str(found) == self.value

    def describe(self) -> str:
        if self.kind is TriggerKind.all_cases:
            return "all new cases"
        if self.kind is TriggerKind.field:
            return f"field {self.path} = {self.value}"
        return f"{self.kind.value.replace('_', ' ')} {self.value}"


@dataclass(frozen=True)
class WorkflowSpec:
    """What a workflow package exports.

    ``build()`` returns the uncompiled ``StateGraph`` (``context_schema=RunContext``); the runner
    compiles it with the checkpointer. ``initial_state(case_id, input)`` makes the first state.
    ``triggers`` say which alerts start a run on their case (none: started by hand or by the API only);
    ``note_kind`` is the kind of note the workflow drafts for approval (None: it drafts none).
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
    triggers: tuple[Trigger, ...] = field(default_factory=tuple)
    note_kind: str | None = DEFAULT_NOTE_KIND

    def triggered_by(self, alert: AlertIn) -> Trigger | None:
        """The first trigger that ``alert`` matches (only for workflows that run on a case)."""
        if not self.needs_case:
            return None
        return next((t for t in self.triggers if t.matches(alert)), None)

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
