"""Test helpers for workflow authors: deterministic models and doubles, no torch, no download.

    from socflow.testing import ScriptedModel, ScriptRule, WorkflowHarness, alert

* ``ScriptedModel`` / ``ScriptRule``: the scripted model double (replies by node name or prompt content).
* ``WorkflowHarness``: a runner on a temporary migrated SQLite file; ``run_to_interrupt`` drives a
  workflow to its approval interrupt, ``resume`` decides on it like an analyst, ``state`` reads the graph.
* ``CaseFactory`` / ``alert``: cases with alerts, written through the ``CaseStore``.
* ``InMemorySiem`` / ``MemoryEvent``: a SIEM whose ``search`` returns the events you gave it.
* ``attack_catalog()``: the pinned ATT&CK catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from socflow import migrate, wiring
from socflow.db import make_engine, session_factory
from socflow.decisions import DecisionNotAllowed, submit_decision
from socflow.enums import RunStatus, Severity
from socflow.errors import SiemError
from socflow.hitl import Action, Decision, ItemDecision
from socflow.ingest import dedup_key
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.scripted import ScriptedCall, ScriptedModel, ScriptRule
from socflow.observables import extract
from socflow.registry import WorkflowRegistry, discover
from socflow.runner import AdvanceResult, Runner
from socflow.schemas import AlertIn
from socflow.sdk import WorkflowSpec
from socflow.settings import Settings
from socflow.store import CaseStore

__all__ = [
    "CallRecord",
    "CaseFactory",
    "InMemorySiem",
    "MemoryEvent",
    "ModelCallRecorder",
    "RunFailed",
    "RunStatus",
    "ScriptRule",
    "ScriptedCall",
    "ScriptedModel",
    "WorkflowHarness",
    "alert",
    "attack_catalog",
    "run_state",
]


# -- workflow authoring helpers (issue 10) -----------------------------------------------------------
# Everything below is core-only: the ATT&CK catalog comes through ``socflow.wiring`` (the composition
# root), and the in-memory SIEM is duck-typed to what workflows call on a SIEM backend.


def attack_catalog() -> Any:
    """The pinned, offline ATT&CK catalog (cached; the same object the runner's ``Deps.attack`` holds)."""
    return wiring.build_attack_catalog()


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _as_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MemoryEvent:
    """A SIEM event for ``InMemorySiem``: the entity fields a lookup matches on, and its evidence payload."""

    event_id: str
    timestamp: str | None = None
    host: str | None = None
    user: str | None = None
    source_ip: str | None = None
    destination_ip: str | None = None
    process: str | None = None
    command_line: str | None = None
    event_code: str | None = None
    hash: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    backend: str = "memory"

    def evidence_id(self, case_id: str) -> str:
        return _stable_id(str(case_id), self.backend, self.event_id)

    def summary(self) -> str:
        parts = [
            f"EventID {self.event_code}" if self.event_code else "event",
            f"on {self.host}" if self.host else "",
            f"by {self.user}" if self.user else "",
            f"process {self.process}" if self.process else "",
            f"from {self.source_ip}" if self.source_ip else "",
        ]
        text = " ".join(p for p in parts if p)
        return text + (f": {self.command_line[:200]}" if self.command_line else "")

    def to_evidence(self, case_id: str) -> dict[str, Any]:
        """The same payload shape as a real SIEM event's (``EvidenceRecord`` fields plus ``case_id``)."""
        data = {k: v for k, v in self.__dict__.items() if v not in (None, {}, "")}
        return {
            "case_id": str(case_id),
            "evidence_id": self.evidence_id(case_id),
            "kind": "siem_event",
            "backend": self.backend,
            "source_event_id": self.event_id,
            "observed_at": self.timestamp,
            "summary": self.summary(),
            "data": data,
        }


class InMemorySiem:
    """A SIEM double: ``search(query)`` over the events you give it, recording every query.

    ``query`` is anything with the entity-query attributes (``host``, ``user``, ``ip``, ``process``,
    ``hash``, ``since``, ``until``, ``limit``), e.g. ``tools.siem.models.EntityQuery``. Events are
    ``MemoryEvent``s or real ``SiemEvent``s (anything with those attributes and ``to_evidence``). Entity
    filters are ANDed and match case-insensitively, like the real backends.
    """

    def __init__(self, events: Iterable[Any] = ()) -> None:
        self.events: list[Any] = list(events)
        self.queries: list[Any] = []

    def add(self, *events: Any) -> None:
        self.events.extend(events)

    @staticmethod
    def _matches(event: Any, query: Any) -> bool:
        def same(a: str | None, b: str | None) -> bool:
            return a is not None and b is not None and a.lower() == b.lower()

        checks = {
            "host": [getattr(event, "host", None)],
            "user": [getattr(event, "user", None)],
            "ip": [getattr(event, "source_ip", None), getattr(event, "destination_ip", None)],
            "process": [getattr(event, "process", None)],
            "hash": [getattr(event, "hash", None)],
        }
        for name, values in checks.items():
            wanted = getattr(query, name, None)
            if wanted is not None and not any(same(v, wanted) for v in values):
                return False
        since, until = _as_utc(getattr(query, "since", None)), _as_utc(getattr(query, "until", None))
        if since is not None or until is not None:
            at = _as_utc(getattr(event, "timestamp", None))
            if at is None or (since is not None and at < since) or (until is not None and at > until):
                return False
        return True

    def search(self, query: Any) -> list[Any]:
        self.queries.append(query)
        hits = [e for e in self.events if self._matches(e, query)]
        return hits[: int(getattr(query, "limit", 100) or 100)]

    def hunt(self, rule: Any, *, limit: int = 100) -> list[Any]:
        raise SiemError("the in-memory SIEM does not run Sigma rules; use the embedded SIEM for hunts")

    def close(self) -> None:
        return None


def alert(
    title: str,
    *,
    severity: str = "high",
    source: str = "test",
    source_ref: str | None = None,
    timestamp: datetime | str | None = None,
    description: str | None = None,
    rule_id: str | None = None,
    tags: Sequence[str] = (),
    hosts: Sequence[str] = (),
    users: Sequence[str] = (),
    ips: Sequence[str] = (),
    processes: Sequence[str] = (),
) -> dict[str, Any]:
    """An alert in the generic format (``AlertIn``), with only the fields a test cares about."""
    return {
        "source": source,
        "source_ref": source_ref,
        "title": title,
        "severity": severity,
        "timestamp": timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp,
        "description": description,
        "rule": {"id": rule_id, "name": title, "tags": list(tags)},
        "entities": {
            "hosts": list(hosts),
            "users": list(users),
            "ips": list(ips),
            "processes": list(processes),
        },
    }


class CaseFactory:
    """Builds cases through the ``CaseStore`` (one case holding every alert given, no grouping)."""

    def __init__(self, factory: sessionmaker[Session], *, actor: str = "test") -> None:
        self.factory = factory
        self.actor = actor

    def case(self, *alerts: dict[str, Any] | AlertIn, title: str | None = None) -> int:
        """A new case with ``alerts`` (dicts in the generic alert format, or ``AlertIn``); its id."""
        if not alerts:
            raise ValueError("a case needs at least one alert")
        parsed = [a if isinstance(a, AlertIn) else AlertIn.model_validate(a) for a in alerts]
        severity = max((a.severity for a in parsed), key=lambda s: Severity(s).rank)
        with self.factory() as session, session.begin():
            store = CaseStore(session)
            case = store.create_case(title=title or parsed[0].title, severity=severity, actor=self.actor)
            for a in parsed:
                store.add_alert(
                    a, dedup_key=dedup_key(a), case_id=case.id, actor=self.actor, observables=extract(a)
                )
            return case.id


class RunFailed(AssertionError):
    """A workflow run ended ``failed`` (or not where the test expected); carries the run's error."""


@dataclass
class WorkflowHarness:
    """A runner on a migrated SQLite file in a temporary folder, with a scripted model and test doubles.

    harness = WorkflowHarness.create(tmp_path, model=ScriptedModel([...]), specs=[SPEC])
    case_id = harness.cases.case(alert("Encoded PowerShell", hosts=["WS1"]))
    paused = harness.run_to_interrupt("my_flow", case_id=case_id)
    done = harness.resume(paused.run_id, "approve")
    assert harness.state(done.run_id)["outcome"] == "approved"
    """

    settings: Settings
    runner: Runner
    model: Any

    @classmethod
    def create(
        cls,
        tmp_path: Path,
        *,
        model: Any = None,
        siem: Any = None,
        specs: Sequence[WorkflowSpec] = (),
        db_url: str | None = None,
        discover_workflows: bool = True,
        policy_file: Path | None = None,
    ) -> WorkflowHarness:
        """``specs`` are registered on top of the discovered workflows (replacing one of the same name);
        with ``discover_workflows=False`` the registry holds ``specs`` only."""
        if db_url is None:
            db_url = f"sqlite:///{Path(tmp_path) / 'socflow.db'}"
            migrate.upgrade(db_url)
        settings = Settings(
            database={"url": db_url},
            model={"backend": "scripted"},
            siem={"path": Path(tmp_path) / "siem.db"},
            policy={"file": policy_file},
        )
        factory = session_factory(make_engine(db_url))
        if model is not None and getattr(model, "recorder", 1) is None:
            model.recorder = ModelCallRecorder(factory)
        registry = discover(settings.workflows.paths) if discover_workflows else WorkflowRegistry()
        for spec in specs:
            registry.add(spec, "test", replace=True)
        deps = wiring.build_deps(settings, factory=factory, model=model, siem=siem)
        return cls(settings, wiring.build_runner(settings, deps=deps, registry=registry), model)

    @property
    def factory(self) -> sessionmaker[Session]:
        return self.runner.factory

    @property
    def cases(self) -> CaseFactory:
        return CaseFactory(self.factory)

    @contextmanager
    def store(self) -> Iterator[CaseStore]:
        """A read-only ``CaseStore`` on a fresh session."""
        with self.factory() as session:
            yield CaseStore(session)

    def _checked(self, result: AdvanceResult, expected: RunStatus | None) -> AdvanceResult:
        if expected is not None and result.status is not expected:
            run = self.runner.get(result.run_id)
            raise RunFailed(f"run {result.run_id} is {result.status}, expected {expected}: {run.error}")
        return result

    def run(
        self,
        workflow: str,
        *,
        case_id: int | None = None,
        data: dict[str, Any] | None = None,
        expect: RunStatus | None = None,
    ) -> AdvanceResult:
        """Start a run and advance it in-process to its first interrupt or its end."""
        run_id = self.runner.start(workflow, case_id=case_id, actor="test", data=data)
        return self._checked(self.runner.advance(run_id), expect)

    def run_to_interrupt(
        self, workflow: str, *, case_id: int | None = None, data: dict[str, Any] | None = None
    ) -> AdvanceResult:
        """``run``, asserting that the run waits at an interrupt (``RunFailed`` with the error if not)."""
        return self.run(workflow, case_id=case_id, data=data, expect=RunStatus.awaiting_input)

    def resume(
        self,
        run_id: str,
        action: Action | str = Action.approve,
        *,
        user: str = "analyst",
        body: str | None = None,
        reason: str | None = None,
        items: Sequence[ItemDecision] = (),
        expect: RunStatus | None = None,
    ) -> AdvanceResult:
        """Decide on the run's pending interrupt through ``submit_decision``, the path every door takes
        (it refuses a stale draft, an action the interrupt does not offer, or undecided items)."""
        decision = Decision(action=Action(action), user=user, body=body, reason=reason, items=list(items))
        run = self.runner.get(run_id)
        if run.case_id is None:
            raise RunFailed(f"run {run_id} has no case to decide on")
        try:
            result = submit_decision(self.runner, run.case_id, decision, run_id=run_id)
        except DecisionNotAllowed as exc:
            raise RunFailed(str(exc)) from exc
        return self._checked(result, expect)

    def state(self, run_id: str) -> dict[str, Any]:
        """The run's latest graph state (from its checkpoints)."""
        return run_state(self.runner, run_id)


def run_state(runner: Runner, run_id: str) -> dict[str, Any]:
    """The latest checkpointed graph state of a run."""
    return runner.registry.get(runner.get(run_id).workflow).read_state(runner.db_url, run_id)
