"""The runner: start a workflow run, advance it to its next interrupt or end, resume it with a decision.

The database is the truth: a run row is created ``queued`` and committed before anyone advances it.
Advancing first *claims* the run with a compare-and-set on its row (status and lease; on PostgreSQL
under a transaction-scoped advisory lock too), so two workers, or two analysts deciding at once, never
run the same graph step twice: the loser's claim updates no row and its call is a no-op. A decision is
stored in ``approvals`` (unique per interrupt) in the same transaction as the claim. A worker that dies
leaves a ``running`` row whose lease expires; the next ``advance`` continues from the last checkpoint.
A heartbeat extends the lease while a graph runs.

The hot path is thin (docs/performance.md): claiming a run is one transaction that also reads the run
and its recorded ``run_steps`` (the nodes look their re-runs up in memory, not per node in the database);
the graph is compiled once per workflow version; and LangGraph writes its checkpoint when the graph exits
(``durability="exit"``: at an interrupt, at the end, or when a node raised), not after every node. A
worker killed between two checkpoints loses nothing: the next ``advance`` runs the graph again from the
last checkpoint, and every node that finished meanwhile returns its recorded ``run_steps`` update without
doing its work (model calls, rows) twice. A completed run keeps only its latest checkpoint (the final
state the UI reads); a failed run keeps the checkpoint ``retry`` resumes from.

Runs never get stuck: a node that fails with a transient error (``socflow.errors.is_transient``: connection
errors, timeouts, HTTP 429/5xx from the model endpoint or the SIEM) is run again from the last checkpoint,
``node_retries`` times with exponential backoff; any other error fails the run at once. A failed run keeps
its checkpoint and its reason (``error_kind``, ``error``), and moves its case to ``needs_attention``;
``retry`` puts it back in the queue (case back where the run left it) and the next ``advance`` continues
from the checkpoint: the nodes that already finished are not run again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, Durability
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from socflow.checkpoints import keep_latest, open_checkpointer
from socflow.db import database_url, is_sqlite
from socflow.enums import CASE_TRANSITIONS, FINAL_RUN_STATUSES, CaseStatus
from socflow.enums import RunStatus as RunStatus
from socflow.errors import ConflictError, NotFoundError, NotRetryable, is_transient
from socflow.registry import WorkflowRegistry
from socflow.runqueue import RunQueue as RunQueue
from socflow.schemas import now_utc
from socflow.sdk import Deps, RunContext, WorkflowSpec
from socflow.store import CaseStore
from socflow.tables import Approval, AuditEvent, Case, RunStep, WorkflowRun

log = logging.getLogger(__name__)


FINAL = FINAL_RUN_STATUSES
DURABILITY: Durability = "exit"  # re-run safety between checkpoints comes from run_steps (socflow.steps)


class IncompatibleWorkflowVersion(ConflictError):
    code = "incompatible_workflow_version"


class AttemptsExhausted(ConflictError):
    """A run that was claimed ``max_attempts`` times without finishing (it keeps killing its worker)."""

    code = "attempts_exhausted"


@dataclass(frozen=True)
class _Claim:
    """A run this runner holds: its row (detached) and its recorded steps, read in the claim's transaction."""

    run: WorkflowRun
    steps: dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class AdvanceResult:
    run_id: str
    status: RunStatus
    advanced: bool  # False: somebody else holds the run, or it had nothing to do
    interrupt: dict[str, Any] | None = None


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Runner:
    """Advances runs of ``registry``'s workflows with ``deps``; the database is ``deps.factory``'s."""

    def __init__(
        self,
        *,
        registry: WorkflowRegistry,
        deps: Deps,
        lease_seconds: int = 600,
        max_attempts: int = 5,
        clock: Callable[[], datetime] = now_utc,
        node_retries: int = 3,
        retry_backoff_seconds: float = 2.0,
        max_backoff_seconds: float = 60.0,
    ) -> None:
        self.max_attempts = max_attempts
        self.node_retries = node_retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.factory = deps.factory
        self.db_url = database_url(deps.factory)
        self.registry = registry
        self.deps = deps
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.owner = _owner()
        self._graphs: dict[tuple[str, str], Pregel[Any, Any, Any, Any]] = {}
        self._graphs_lock = threading.Lock()

    # -- start ---------------------------------------------------------------------------------------
    def start(
        self,
        workflow: str,
        *,
        case_id: int | None,
        actor: str,
        data: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> str:
        """Create a queued run (in the caller's session, or committed here)."""
        queue = RunQueue(self.registry, clock=self.clock)
        if session is not None:
            return queue.enqueue(session, workflow, case_id=case_id, actor=actor, data=data)
        with self.factory() as s, s.begin():
            return queue.enqueue(s, workflow, case_id=case_id, actor=actor, data=data)

    def get(self, run_id: str) -> WorkflowRun:
        with self.factory() as s:
            run = s.get(WorkflowRun, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            s.expunge(run)
            return run

    # -- claim ---------------------------------------------------------------------------------------
    def _advisory_lock(self, s: Session, run_id: str) -> None:
        if not is_sqlite(self.db_url):
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"socflow-run:{run_id}"})

    def _claimed(self, s: Session, run_id: str) -> _Claim:
        """The claimed run and its recorded steps, in the claim's transaction."""
        run = s.get(WorkflowRun, run_id, populate_existing=True)
        assert run is not None
        rows = s.execute(select(RunStep.node, RunStep.key, RunStep.update).where(RunStep.run_id == run_id))
        steps = {(node, key): dict(update) for node, key, update in rows}
        s.flush()
        s.expunge(run)
        return _Claim(run, steps)

    def _claim(self, run_id: str) -> _Claim | None:
        now = self.clock()
        with self.factory() as s, s.begin():
            self._advisory_lock(s, run_id)
            result = s.execute(
                update(WorkflowRun)
                .where(
                    WorkflowRun.id == run_id,
                    WorkflowRun.attempts < self.max_attempts,
                    or_(
                        WorkflowRun.status == RunStatus.queued.value,
                        (WorkflowRun.status == RunStatus.running.value) & (WorkflowRun.lease_until < now),
                    ),
                )
                .values(
                    status=RunStatus.running.value,
                    lease_owner=self.owner,
                    lease_until=now + self.lease,
                    attempts=WorkflowRun.attempts + 1,
                    updated_at=now,
                    started_at=func.coalesce(WorkflowRun.started_at, now),
                )
                .execution_options(synchronize_session=False)
            )
            return self._claimed(s, run_id) if result.rowcount else None  # type: ignore[attr-defined]

    def _claim_with_decision(self, run_id: str, decision: dict[str, Any], user: str) -> _Claim | None:
        """Record the decision on the pending interrupt and claim the run, atomically; False if too late."""
        now = self.clock()
        try:
            with self.factory() as s, s.begin():
                self._advisory_lock(s, run_id)
                run = s.get(WorkflowRun, run_id)
                if run is None:
                    raise NotFoundError(f"run {run_id} does not exist")
                if run.status != RunStatus.awaiting_input.value or not run.pending_interrupt_id:
                    return None
                s.add(
                    Approval(
                        run_id=run_id,
                        case_id=run.case_id,
                        interrupt_id=run.pending_interrupt_id,
                        decision=str(decision.get("action", "")),
                        user=user,
                        comment=decision.get("reason") or decision.get("comment"),
                        payload=decision,
                        created_at=now,
                    )
                )
                s.flush()
                result = s.execute(
                    update(WorkflowRun)
                    .where(
                        WorkflowRun.id == run_id,
                        WorkflowRun.status == RunStatus.awaiting_input.value,
                        WorkflowRun.pending_interrupt_id == run.pending_interrupt_id,
                    )
                    .values(
                        status=RunStatus.running.value,
                        lease_owner=self.owner,
                        lease_until=now + self.lease,
                        attempts=WorkflowRun.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    s.rollback()
                    return None
                CaseStore(s).record_run_event(
                    run_id,
                    "run.decision",
                    case_id=run.case_id,
                    actor=user,
                    data={"action": decision.get("action"), "interrupt_id": run.pending_interrupt_id},
                )
                return self._claimed(s, run_id)
        except IntegrityError:  # the interrupt was already decided
            return None

    # -- advance -------------------------------------------------------------------------------------
    def advance(self, run_id: str) -> AdvanceResult:
        """Run a queued run (or one whose lease expired) until its next interrupt or its end."""
        claim = self._claim(run_id)
        if claim is None:
            run = self.get(run_id)
            if self._give_up(run):
                return self._finish(
                    run_id,
                    RunStatus.failed,
                    error=AttemptsExhausted(
                        f"run {run_id} was started {run.attempts} times without finishing"
                    ),
                )
            return AdvanceResult(run_id, RunStatus(run.status), False, run.pending_interrupt)
        return self._drive(claim, resume=None)

    def _give_up(self, run: WorkflowRun) -> bool:
        """Claim the right to fail a run whose attempts ran out (compare-and-set: one caller wins)."""
        now = self.clock()
        if run.attempts < self.max_attempts:
            return False
        with self.factory() as s, s.begin():
            result = s.execute(
                update(WorkflowRun)
                .where(
                    WorkflowRun.id == run.id,
                    WorkflowRun.attempts >= self.max_attempts,
                    or_(
                        WorkflowRun.status == RunStatus.queued.value,
                        (WorkflowRun.status == RunStatus.running.value) & (WorkflowRun.lease_until < now),
                    ),
                )
                .values(status=RunStatus.running.value, lease_owner=self.owner, lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def resume(self, run_id: str, decision: dict[str, Any], *, user: str) -> AdvanceResult:
        """Apply an analyst's decision to the pending interrupt. A second decision is a no-op."""
        self._check_version(self.get(run_id))
        claim = self._claim_with_decision(run_id, decision, user)
        if claim is None:
            run = self.get(run_id)
            return AdvanceResult(run_id, RunStatus(run.status), False, run.pending_interrupt)
        return self._drive(claim, resume=decision)

    def _check_version(self, run: WorkflowRun) -> WorkflowSpec:
        spec = self.registry.get(run.workflow)
        if run.workflow_version.split(".", 1)[0] != spec.major:
            raise IncompatibleWorkflowVersion(
                f"run {run.id} was started by {run.workflow} {run.workflow_version}; the installed version "
                f"is {spec.version}: its checkpoints cannot be resumed by this version"
            )
        return spec

    def _recorded_decision(self, run: WorkflowRun, interrupt_id: str) -> dict[str, Any] | None:
        with self.factory() as s:
            approval = s.scalar(select(Approval).where(Approval.interrupt_id == interrupt_id))
            return dict(approval.payload) if approval is not None else None

    def _graph(self, spec: WorkflowSpec) -> Pregel[Any, Any, Any, Any]:
        """The workflow's graph, compiled once per version (without a checkpointer: each drive attaches its
        own, on its own connection)."""
        key = (spec.name, spec.version)
        graph = self._graphs.get(key)
        if graph is None:
            with self._graphs_lock:
                graph = self._graphs.get(key)
                if graph is None:
                    graph = self._graphs[key] = spec.build().compile()
        return graph

    def _drive(self, claim: _Claim, *, resume: dict[str, Any] | None) -> AdvanceResult:
        run, run_id = claim.run, claim.run.id
        try:
            spec = self._check_version(run)
        except IncompatibleWorkflowVersion as exc:
            return self._finish(run_id, RunStatus.failed, error=exc)
        ctx = RunContext(run_id=run.id, case_id=run.case_id, deps=self.deps, steps=claim.steps)
        config: RunnableConfig = {"configurable": {"thread_id": run.id}}
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(run_id, stop), daemon=True)
        beat.start()
        try:
            with open_checkpointer(self.db_url) as saver:
                graph = self._graph(spec).copy({"checkpointer": saver})
                for retry in range(self.node_retries + 1):
                    if resume is not None and retry == 0:
                        payload: Any = Command(resume=resume)
                    elif saver.get_tuple(config) is None:
                        payload = run.input  # first start (or killed before its first checkpoint)
                    else:
                        payload = None  # recover from the last checkpoint
                        snapshot = graph.get_state(config)
                        pending = [i for t in snapshot.tasks for i in t.interrupts]
                        if pending:
                            decided = self._recorded_decision(run, pending[0].id)
                            if decided is None:  # still waiting for a human: re-publish the interrupt
                                return self._await(run_id, pending[0].id, pending[0].value)
                            payload = Command(resume=decided)
                    try:
                        out = graph.invoke(payload, config, context=ctx, durability=DURABILITY, version="v2")
                        break
                    except Exception as exc:
                        if retry >= self.node_retries or not is_transient(exc):
                            raise
                        delay = min(self.retry_backoff_seconds * 2**retry, self.max_backoff_seconds)
                        log.warning("run %s: transient %s, node retried in %.1f s", run_id, _kind(exc), delay)
                        time.sleep(delay)
                pending = list(out.interrupts)
                if not pending:  # completed: only the final state is read from here on
                    self._compact(saver, run_id)
        except Exception as exc:
            log.exception("run %s failed", run_id)
            return self._finish(run_id, RunStatus.failed, error=exc)
        finally:
            stop.set()
            beat.join(timeout=5)
        if pending:
            return self._await(run_id, pending[0].id, pending[0].value)
        return self._finish(run_id, RunStatus.completed)

    def _compact(self, saver: Any, run_id: str) -> None:
        """Keep only a completed run's latest checkpoint; a failure leaves more rows, never fails the run
        (``socflow db prune`` trims them later)."""
        try:
            keep_latest(saver, [run_id])
        except Exception:
            log.warning("run %s: its older checkpoints were not compacted", run_id, exc_info=True)

    def _heartbeat(self, run_id: str, stop: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.5)
        while not stop.wait(interval):
            try:
                with self.factory() as s, s.begin():
                    s.execute(
                        update(WorkflowRun)
                        .where(
                            WorkflowRun.id == run_id,
                            WorkflowRun.lease_owner == self.owner,
                            WorkflowRun.status == RunStatus.running.value,
                        )
                        .values(lease_until=self.clock() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
            except Exception:  # a missed beat only shortens the lease
                log.warning("lease heartbeat for run %s failed", run_id, exc_info=True)

    def _await(self, run_id: str, interrupt_id: str, value: Any) -> AdvanceResult:
        now = self.clock()
        payload = value if isinstance(value, dict) else {"value": value}
        with self.factory() as s, s.begin():
            run = s.get(WorkflowRun, run_id)
            assert run is not None
            first_time = run.pending_interrupt_id != interrupt_id or run.status != RunStatus.awaiting_input
            run.status = RunStatus.awaiting_input.value
            run.pending_interrupt_id = interrupt_id
            run.pending_interrupt = payload
            run.lease_owner = None
            run.lease_until = None
            run.updated_at = now
            if first_time:
                CaseStore(s).record_run_event(
                    run_id,
                    "run.awaiting_input",
                    case_id=run.case_id,
                    actor="socflow",
                    data={"interrupt_id": interrupt_id},
                )
        return AdvanceResult(run_id, RunStatus.awaiting_input, True, payload)

    def _finish(self, run_id: str, status: RunStatus, *, error: BaseException | None = None) -> AdvanceResult:
        now = self.clock()
        with self.factory() as s, s.begin():
            run = s.get(WorkflowRun, run_id)
            assert run is not None
            run.status = status.value
            run.pending_interrupt_id = None
            run.pending_interrupt = None
            run.lease_owner = None
            run.lease_until = None
            run.updated_at = now
            run.finished_at = now
            if error is not None:
                run.error = str(error)[:4000]
                run.error_kind = _kind(error)
            if status is RunStatus.failed and run.case_id is not None:
                self._case_needs_attention(s, run)
            CaseStore(s).record_run_event(
                run_id,
                f"run.{status.value}",
                case_id=run.case_id,
                actor="socflow",
                data={"error_kind": run.error_kind} if error is not None else {},
            )
        return AdvanceResult(run_id, status, True)

    def _case_needs_attention(self, s: Session, run: WorkflowRun) -> None:
        case = s.get(Case, run.case_id)
        if case is not None and CaseStatus.needs_attention in CASE_TRANSITIONS[CaseStatus(case.status)]:
            CaseStore(s, clock=self.clock).move_case(
                case.id, CaseStatus.needs_attention, actor="socflow", reason=f"run {run.id}: {run.error_kind}"
            )

    # -- retry ---------------------------------------------------------------------------------------
    def retry(self, run_id: str, *, actor: str) -> str:
        """Queue a failed run again (compare-and-set: one caller wins); its next ``advance`` resumes from
        its last checkpoint. The case goes back to the status it had before ``needs_attention``."""
        now = self.clock()
        with self.factory() as s, s.begin():
            self._advisory_lock(s, run_id)
            run = s.get(WorkflowRun, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            self._check_version(run)
            result = s.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.status == RunStatus.failed.value)
                .values(
                    status=RunStatus.queued.value,
                    attempts=0,
                    error=None,
                    error_kind=None,
                    finished_at=None,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotRetryable(f"run {run_id} is {run.status}: only a failed run can be retried")
            store = CaseStore(s, clock=self.clock)
            if run.case_id is not None:
                case = s.get(Case, run.case_id)
                if case is not None and case.status == CaseStatus.needs_attention.value:
                    before = self._status_before_attention(s, case.id)
                    store.move_case(case.id, before, actor=actor, reason="retry")
            store.record_run_event(run_id, "run.retried", case_id=run.case_id, actor=actor)
        return run_id

    def _status_before_attention(self, s: Session, case_id: int) -> CaseStatus:
        event = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.case_id == case_id, AuditEvent.action == "case.status_changed")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        data = event.data if event is not None and isinstance(event.data, dict) else {}
        before = data.get("from") if data.get("to") == CaseStatus.needs_attention.value else None
        return (
            CaseStatus(before)
            if isinstance(before, str) and before in CaseStatus.__members__
            else CaseStatus.triaging
        )

    # -- queries -------------------------------------------------------------------------------------
    def pending_runs(self, case_id: int) -> list[WorkflowRun]:
        with self.factory() as s:
            rows = list(
                s.scalars(
                    select(WorkflowRun)
                    .where(
                        WorkflowRun.case_id == case_id, WorkflowRun.status == RunStatus.awaiting_input.value
                    )
                    .order_by(WorkflowRun.created_at)
                )
            )
            for r in rows:
                s.expunge(r)
            return rows

    def runnable(self, *, limit: int = 100) -> list[str]:
        """Runs left queued, or running past their lease (for the sweeper and the in-process loop)."""
        now = self.clock()
        with self.factory() as s:
            return list(
                s.scalars(
                    select(WorkflowRun.id)
                    .where(
                        or_(
                            WorkflowRun.status == RunStatus.queued.value,
                            (WorkflowRun.status == RunStatus.running.value) & (WorkflowRun.lease_until < now),
                        )
                    )
                    .order_by(WorkflowRun.created_at)
                    .limit(limit)
                )
            )


def _kind(error: BaseException) -> str:
    return str(getattr(error, "code", type(error).__name__))
