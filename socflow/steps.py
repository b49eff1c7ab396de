"""Run steps: the one re-run mechanism for graph nodes.

LangGraph re-runs a node whose checkpoint was not written (the process died after the node's database
writes, before its checkpoint). Every node is wrapped with ``@run_step``; it writes its rows in one
``step_writes`` transaction and hands its state update to ``tx.done(update)``, which stores the update in
``run_steps`` in that same transaction. A re-run of the node for the same visit finds the record and
returns the update without doing anything again::

    @run_step
    def gather_evidence(state: TriageState, runtime: Runtime[RunContext]) -> TriageState:
        records = ...  # reads, tool and model calls
        with step_writes(runtime) as tx:
            tx.store.add_evidence(state["case_id"], records, actor=ACTOR)
            return tx.done({"evidence_ids": [r.evidence_id for r in records]})

A node that writes nothing just returns its update; ``@run_step`` records it. A visit is keyed by the
node's name and a hash of the state the node received, so the redraft after a reject (different state)
is a new visit and the re-run of the same visit (same checkpointed state) is not.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from langgraph.config import get_config
from langgraph.runtime import Runtime

from socflow.sdk import RunContext
from socflow.store import CaseStore, find_run_step, record_run_step

S = TypeVar("S", bound=Mapping[str, Any])
U = TypeVar("U", bound=Mapping[str, Any])
S_in = TypeVar("S_in", bound=Mapping[str, Any], contravariant=True)
U_out = TypeVar("U_out", bound=Mapping[str, Any], covariant=True)


class Node(Protocol[S_in, U_out]):
    """A graph node: ``(state, runtime) -> partial state``."""

    def __call__(self, state: S_in, runtime: Runtime[RunContext]) -> U_out: ...


@dataclass
class _Visit:
    run_id: str
    node: str
    key: str
    recorded: bool = False


_CURRENT: ContextVar[_Visit | None] = ContextVar("socflow_run_step", default=None)


def visit_key(state: Mapping[str, Any]) -> str:
    """A stable hash of the state a node received (JSON, sorted keys)."""
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _node_name(fn: Callable[..., Any]) -> str:
    try:
        name = get_config().get("metadata", {}).get("langgraph_node")
    except RuntimeError:  # called outside a graph (a unit test calling the node directly)
        name = None
    return str(name or fn.__name__)


def run_step(fn: Node[S, U]) -> Node[S, U]:
    """Wrap a graph node: a re-run of a recorded visit returns the recorded update; else the node runs
    and its update is recorded (by ``tx.done`` with its rows, or here when it wrote nothing)."""

    @functools.wraps(fn)
    def node(state: S, runtime: Runtime[RunContext]) -> U:
        ctx = runtime.context
        visit = _Visit(ctx.run_id, _node_name(fn), visit_key(state))
        if ctx.steps is not None:  # read once by the runner when it claimed the run
            recorded = ctx.steps.get((visit.node, visit.key))
        else:
            with ctx.deps.factory() as session:
                recorded = find_run_step(session, visit.run_id, visit.node, visit.key)
        if recorded is not None:
            return cast(U, copy.deepcopy(recorded))
        token = _CURRENT.set(visit)
        try:
            update = fn(state, runtime)
        finally:
            _CURRENT.reset(token)
        if not visit.recorded:
            with ctx.deps.factory() as session, session.begin():
                record_run_step(
                    session, visit.run_id, visit.node, visit.key, dict(update), at=ctx.deps.clock()
                )
        if ctx.steps is not None:  # committed (the node's own transaction, or the one above)
            ctx.steps[(visit.node, visit.key)] = dict(update)
        return update

    return node


@dataclass
class StepTransaction:
    """A node's write transaction: ``store`` writes rows, ``done(update)`` records the step with them."""

    store: CaseStore
    visit: _Visit
    ctx: RunContext

    @property
    def node(self) -> str:
        return self.visit.node

    def done(self, update: U) -> U:
        if self.visit.recorded:
            raise RuntimeError(f"node {self.visit.node} recorded its step twice")
        record_run_step(
            self.store.session,
            self.visit.run_id,
            self.visit.node,
            self.visit.key,
            dict(update),
            at=self.ctx.deps.clock(),
        )
        self.visit.recorded = True
        return update


@contextmanager
def step_writes(runtime: Runtime[RunContext]) -> Iterator[StepTransaction]:
    """The node's one write transaction (commits on exit); call ``done(update)`` inside it."""
    visit = _CURRENT.get()
    if visit is None:
        raise RuntimeError("step_writes is for nodes wrapped with @run_step")
    ctx = runtime.context
    with ctx.deps.factory() as session, session.begin():
        tx = StepTransaction(CaseStore(session, clock=ctx.deps.clock), visit, ctx)
        yield tx
        if not visit.recorded:
            raise RuntimeError(f"node {visit.node} wrote rows without recording its step (call tx.done)")


__all__ = ["StepTransaction", "run_step", "step_writes", "visit_key"]
