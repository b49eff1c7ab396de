"""Run queueing: which workflows a new case or a joining alert starts, read from the workflow specs.

Each workflow spec declares its ``triggers`` (``socflow.sdk.Trigger``). When an alert opens a case, every
workflow with a matching trigger gets its own queued run. When an alert joins a case:

* when the alert changes what the model saw in a way that matters (``judge_join``: a host, user or ATT&CK
  technique the assessed alerts did not have, a higher severity, or more than ``reassess_after_alerts``
  alerts joined since the assessment), runs of the case waiting at an approval interrupt are superseded
  (their draft is stale) and each of their workflows gets one re-assessment run unless one is already
  queued: a stale draft always has a queued re-assessment;
* any other joining alert joins silently: the draft stays fresh and no run is queued (the alert's grouping
  reason says why);
* a workflow whose trigger matches the joining alert and that has no run on the case yet gets its first.

"What the model saw" is the case's alerts received up to the start of the waiting run (it reads the case
after it starts). The state is read once per transaction for every case of a chunk (``preload``).

Runs are created inside the caller's transaction, so the run row commits with the case or alert. The core
names no workflow: a workflow found by discovery starts on its own triggers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from socflow.enums import ACTIVE_RUN_STATUSES, RunStatus, Severity
from socflow.errors import ConflictError
from socflow.registry import WorkflowRegistry
from socflow.schemas import AlertIn, now_utc
from socflow.store import CaseStore, insert_audit_events, table_of
from socflow.tables import Alert, WorkflowRun

#: Default of ``SOCFLOW_GROUPING__REASSESS_AFTER_ALERTS``: a waiting draft is re-assessed once more than this
#: many alerts joined its case since the assessment, even when none brought anything new.
REASSESS_AFTER_ALERTS = 500
_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


def techniques_of(tags: Iterable[object]) -> set[str]:
    """ATT&CK technique ids named by rule tags (``attack.t1059.001`` -> ``T1059.001``)."""
    found = set()
    for tag in tags:
        m = _TECHNIQUE_TAG.match(str(tag)) if isinstance(tag, str) else None
        if m:
            found.add(m.group(1).upper())
    return found


@dataclass
class _Seen:
    """What the model saw when the case's waiting draft was assessed, and what joined since."""

    hosts: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    techniques: set[str] = field(default_factory=set)
    severity: int = 0
    joined_since: int = 0

    def add(
        self, hosts: Iterable[str], users: Iterable[str], techniques: Iterable[str], severity: str
    ) -> None:
        self.hosts.update(h.lower() for h in hosts)
        self.users.update(u.lower() for u in users)
        self.techniques.update(techniques)
        self.severity = max(self.severity, Severity(severity).rank)


@dataclass(frozen=True)
class JoinJudgement:
    """Whether a joining alert makes the case's waiting draft stale, and why (``None``: no draft waits)."""

    stale: bool
    reason: str | None


@dataclass
class _RunInfo:
    id: str
    workflow: str
    status: str
    created_at: datetime
    reassess: bool
    started_at: datetime | None = None


class RunQueue:
    """Creates queued runs inside the caller's transaction (the run row commits with the case)."""

    def __init__(
        self,
        registry: WorkflowRegistry,
        *,
        clock: Callable[[], datetime] = now_utc,
        reassess_window: timedelta = timedelta(hours=1),
        reassess_after_alerts: int = REASSESS_AFTER_ALERTS,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.reassess_window = reassess_window
        self.reassess_after_alerts = reassess_after_alerts

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
        stale: bool = True,
    ) -> list[str]:
        """When ``stale`` (``judge_join`` says the alert matters): mark the case's drafts stale, supersede
        and re-assess its waiting runs. Always: start triggered workflows new to the case."""
        existing = self._case_runs(session, case_id)
        runs: list[str] = []
        waiting = (
            {r.workflow for r in existing if r.status == RunStatus.awaiting_input.value} if stale else set()
        )
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

    def open_cases(
        self, session: Session, opened: Sequence[tuple[int, AlertIn]], *, actor: str
    ) -> dict[int, list[str]]:
        """``on_case_opened`` for many new cases at once: the runs and their ``run.queued`` events written
        with two set-based inserts; the run ids of each case."""
        now = self.clock()
        specs = list(self.registry.specs())
        memo = self._memo(session)
        runs: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        queued: dict[int, list[str]] = {}
        for case_id, alert in opened:
            ids = queued.setdefault(case_id, [])
            infos = memo.setdefault(case_id, [])
            for spec in specs:
                trigger = spec.triggered_by(alert)
                if trigger is None:
                    continue
                run_id = str(uuid.uuid4())
                runs.append(
                    {
                        "id": run_id,
                        "workflow": spec.name,
                        "workflow_version": spec.version,
                        "case_id": case_id,
                        "status": RunStatus.queued.value,
                        "input": spec.initial_state(case_id, {}),
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                events.append(
                    {
                        "at": now,
                        "actor": actor,
                        "action": "run.queued",
                        "entity_type": "run",
                        "entity_id": run_id,
                        "case_id": case_id,
                        "data": {"workflow": spec.name, "reason": f"new case: {trigger.describe()}"},
                    }
                )
                ids.append(run_id)
                infos.append(_RunInfo(run_id, spec.name, RunStatus.queued.value, now, False))
        if runs:
            session.execute(insert(table_of(WorkflowRun)), runs)
            insert_audit_events(session, events)
        return queued

    # -- storm economy -------------------------------------------------------------------------------
    def preload(self, session: Session, case_ids: Iterable[int]) -> None:
        """Read the runs of these cases, and what the model saw for those with a waiting draft, in a few
        queries for a whole chunk (instead of per joining alert)."""
        memo = self._memo(session)
        todo = sorted({c for c in case_ids if c not in memo})
        if todo:
            for c in todo:
                memo[c] = []
            rows = session.execute(
                select(
                    WorkflowRun.id,
                    WorkflowRun.case_id,
                    WorkflowRun.workflow,
                    WorkflowRun.status,
                    WorkflowRun.created_at,
                    WorkflowRun.input,
                    WorkflowRun.started_at,
                ).where(WorkflowRun.case_id.in_(todo))
            )
            for r in rows:
                memo[r.case_id].append(
                    _RunInfo(
                        r.id,
                        r.workflow,
                        r.status,
                        r.created_at,
                        bool((r.input or {}).get("reassess")),
                        r.started_at,
                    )
                )
        self._load_seen(session, [c for c in case_ids if c not in self._seen_memo(session)])

    def judge_join(self, session: Session, case_id: int, alert: AlertIn) -> JoinJudgement:
        """Does this joining alert change what the model saw in a way that matters? Call it before the
        alert is stored, in arrival order; a stale judgement ends the waiting draft for later ones."""
        seen_memo = self._seen_memo(session)
        if case_id not in seen_memo:
            self._case_runs(session, case_id)
            self._load_seen(session, [case_id])
        seen = seen_memo.get(case_id)
        if seen is None:
            return JoinJudgement(stale=False, reason=None)
        why = self._matters(seen, alert)
        if why is not None:
            seen_memo[case_id] = None  # the draft is superseded; a re-assessment reads every alert
            return JoinJudgement(stale=True, reason=f"draft stale: {why}")
        return JoinJudgement(
            stale=False,
            reason=(
                "draft kept: no new host, user or technique, no higher severity, "
                f"{seen.joined_since} alert(s) joined since the assessment "
                f"(re-assessed after more than {self.reassess_after_alerts})"
            ),
        )

    def _matters(self, seen: _Seen, alert: AlertIn) -> str | None:
        hosts = sorted({h.lower() for h in alert.entities.hosts} - seen.hosts)
        if hosts:
            return f"new host {hosts[0]}"
        users = sorted({u.lower() for u in alert.entities.users} - seen.users)
        if users:
            return f"new user {users[0]}"
        techniques = sorted(techniques_of(alert.rule.tags) - seen.techniques)
        if techniques:
            return f"new technique {techniques[0]}"
        if Severity(alert.severity).rank > seen.severity:
            return f"higher severity {Severity(alert.severity).value}"
        seen.joined_since += 1
        if seen.joined_since > self.reassess_after_alerts:
            limit = self.reassess_after_alerts
            return f"{seen.joined_since} alerts joined since the assessment (more than {limit})"
        return None

    def _load_seen(self, session: Session, case_ids: Sequence[int]) -> None:
        seen_memo = self._seen_memo(session)
        since: dict[int, datetime] = {}
        for case_id in case_ids:
            waiting = [
                r for r in self._case_runs(session, case_id) if r.status == RunStatus.awaiting_input.value
            ]
            if not waiting:
                seen_memo[case_id] = None
                continue
            since[case_id] = min(r.started_at or r.created_at for r in waiting)
            seen_memo[case_id] = _Seen()
        if not since:
            return
        saw = or_(*(and_(Alert.case_id == c, Alert.received_at <= t) for c, t in since.items()))
        for row in session.execute(
            select(Alert.case_id, Alert.entities, Alert.rule_tags, Alert.severity).where(saw)
        ):
            state = seen_memo[row.case_id]
            assert state is not None
            entities = row.entities or {}
            state.add(
                [str(h) for h in entities.get("hosts") or []],
                [str(u) for u in entities.get("users") or []],
                techniques_of(row.rule_tags or []),
                row.severity,
            )
        after = or_(*(and_(Alert.case_id == c, Alert.received_at > t) for c, t in since.items()))
        for counted in session.execute(
            select(Alert.case_id, func.count(Alert.id)).where(after).group_by(Alert.case_id)
        ):
            counted_case, count = counted
            if counted_case is None:
                continue
            state = seen_memo[counted_case]
            assert state is not None
            state.joined_since = int(count)

    # -- helpers -------------------------------------------------------------------------------------
    def _case_runs(self, session: Session, case_id: int) -> list[_RunInfo]:
        """The case's runs, read once per transaction (an alert storm joins one case thousands of times);
        ``enqueue`` and ``supersede_waiting`` keep the list current."""
        memo = self._memo(session)
        if case_id not in memo:
            rows = session.scalars(select(WorkflowRun).where(WorkflowRun.case_id == case_id))
            memo[case_id] = [
                _RunInfo(
                    r.id,
                    r.workflow,
                    r.status,
                    r.created_at,
                    bool((r.input or {}).get("reassess")),
                    r.started_at,
                )
                for r in rows
            ]
        return memo[case_id]

    @staticmethod
    def _memo(session: Session) -> dict[int, list[_RunInfo]]:
        key = ("socflow.runqueue", id(session.get_transaction()))
        memo: dict[int, list[_RunInfo]] = session.info.setdefault(key, {})
        return memo

    @staticmethod
    def _seen_memo(session: Session) -> dict[int, _Seen | None]:
        key = ("socflow.runqueue.seen", id(session.get_transaction()))
        memo: dict[int, _Seen | None] = session.info.setdefault(key, {})
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
