"""Run queueing: which workflows a new case or a joining alert starts, read from the workflow specs.

Each workflow spec declares its ``triggers`` (``socflow.sdk.Trigger``). When an alert opens a case, every
workflow with a matching trigger gets its own queued run. When an alert joins a case:

* runs of the case waiting at an approval interrupt are superseded (their draft no longer covers every
  alert) and each of their workflows gets one re-assessment run, at most one per workflow and case per
  ``reassess_window``;
* a workflow whose trigger matches the joining alert and that has no run on the case yet gets its first.

Runs are created inside the caller's transaction, so the run row commits with the case or alert. The core
names no workflow: a workflow found by discovery starts on its own triggers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from socflow.enums import ACTIVE_RUN_STATUSES, RunStatus
from socflow.errors import ConflictError
from socflow.registry import WorkflowRegistry
from socflow.schemas import AlertIn, now_utc
from socflow.store import CaseStore
from socflow.tables import WorkflowRun


@dataclass
class _RunInfo:
    id: str
    workflow: str
    status: str
    created_at: datetime
    reassess: bool


class RunQueue:
    """Creates queued runs inside the caller's transaction (the run row commits with the case)."""

    def __init__(
        self,
        registry: WorkflowRegistry,
        *,
        clock: Callable[[], datetime] = now_utc,
        reassess_window: timedelta = timedelta(hours=1),
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.reassess_window = reassess_window

    def enqueue(
        self,
        session: Session,
        workflow: str,
        *,
        case_id: int | None,
        actor: str,
        data: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> str:
        spec = self.registry.get(workflow)
        if spec.needs_case and case_id is None:
            raise ConflictError(f"workflow {spec.name} needs a case")
        now = self.clock()
        run = WorkflowRun(
            id=str(uuid.uuid4()),
            workflow=spec.name,
            workflow_version=spec.version,
            case_id=case_id,
            status=RunStatus.queued.value,
            input=spec.initial_state(case_id, data or {}),
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(run)
        session.flush()
        if case_id is not None and case_id in self._memo(session):
            info = _RunInfo(run.id, run.workflow, run.status, now, bool((data or {}).get("reassess")))
            self._memo(session)[case_id].append(info)
        CaseStore(session).record_run_event(
            run.id, "run.queued", case_id=case_id, actor=actor, data={"workflow": spec.name, "reason": reason}
        )
        return run.id

    # -- triggers ------------------------------------------------------------------------------------
    def on_case_opened(self, session: Session, case_id: int, alert: AlertIn, *, actor: str) -> list[str]:
        """One run for every workflow whose trigger matches the alert that opened the case."""
        runs = []
        for spec in self.registry.specs():
            trigger = spec.triggered_by(alert)
            if trigger is not None:
                reason = f"new case: {trigger.describe()}"
                runs.append(self.enqueue(session, spec.name, case_id=case_id, actor=actor, reason=reason))
        return runs

    def on_alert_joined(
        self,
        session: Session,
        case_id: int,
        alert: AlertIn,
        *,
        actor: str,
        why: str,
        window: timedelta | None = None,
    ) -> list[str]:
        """Mark the case's drafts stale, supersede and re-assess its waiting runs; start triggered
        workflows new to the case."""
        existing = self._case_runs(session, case_id)
        runs: list[str] = []
        waiting = {r.workflow for r in existing if r.status == RunStatus.awaiting_input.value}
        if waiting:
            CaseStore(session, clock=self.clock).mark_draft_stale(
                case_id, actor=actor, reason=f"{why}: drafts stale"
            )
            self.supersede_waiting(session, case_id, actor=actor)
        for name in sorted(waiting):
            if name not in self.registry.names() or self.registry.get(name).input_schema is not None:
                continue  # no longer installed, or it needs more input than a case
            # A stale draft always has a queued re-assessment (issue 17, the frozen case): skip only when
            # one is already queued and not yet started (it will read the new alert).
            if any(r.workflow == name and r.status == RunStatus.queued.value for r in existing):
                continue
            reason = f"re-assess: {why} while the draft awaited approval"
            runs.append(
                self.enqueue(
                    session, name, case_id=case_id, actor=actor, data={"reassess": True}, reason=reason
                )
            )
        started = {r.workflow for r in existing}
        for spec in self.registry.specs():
            trigger = spec.triggered_by(alert)
            if trigger is not None and spec.name not in started:
                reason = f"{why}: {trigger.describe()}"
                runs.append(self.enqueue(session, spec.name, case_id=case_id, actor=actor, reason=reason))
        return runs

    # -- helpers -------------------------------------------------------------------------------------
    def _case_runs(self, session: Session, case_id: int) -> list[_RunInfo]:
        """The case's runs, read once per transaction (an alert storm joins one case thousands of times);
        ``enqueue`` and ``supersede_waiting`` keep the list current."""
        memo = self._memo(session)
        if case_id not in memo:
            rows = session.scalars(select(WorkflowRun).where(WorkflowRun.case_id == case_id))
            memo[case_id] = [
                _RunInfo(r.id, r.workflow, r.status, r.created_at, bool((r.input or {}).get("reassess")))
                for r in rows
            ]
        return memo[case_id]

    @staticmethod
    def _memo(session: Session) -> dict[int, list[_RunInfo]]:
        key = ("socflow.runqueue", id(session.get_transaction()))
        memo: dict[int, list[_RunInfo]] = session.info.setdefault(key, {})
        return memo

    def has_recent(self, session: Session, case_id: int, *, since: datetime) -> bool:
        """A run for the case that is queued or running, or was created after ``since``."""
        stmt = select(WorkflowRun.id).where(
            WorkflowRun.case_id == case_id,
            or_(
                WorkflowRun.status.in_([s.value for s in ACTIVE_RUN_STATUSES]),
                WorkflowRun.created_at >= since,
            ),
        )
        return session.scalar(stmt.limit(1)) is not None

    def supersede_waiting(self, session: Session, case_id: int, *, actor: str) -> list[str]:
        """Runs of the case waiting at an interrupt become ``superseded`` (their draft is stale)."""
        ids = list(
            session.scalars(
                select(WorkflowRun.id).where(
                    WorkflowRun.case_id == case_id, WorkflowRun.status == RunStatus.awaiting_input.value
                )
            )
        )
        now = self.clock()
        for run_id in ids:
            session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.status == RunStatus.awaiting_input.value)
                .values(status=RunStatus.superseded.value, updated_at=now, finished_at=now)
                .execution_options(synchronize_session=False)
            )
            CaseStore(session).record_run_event(run_id, "run.superseded", case_id=case_id, actor=actor)
        for row in self._memo(session).get(case_id, []):
            if row.id in ids:
                row.status = RunStatus.superseded.value
        return ids
