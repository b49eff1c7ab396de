"""Prometheus metrics, read at scrape time from the database (the truth) and the broker.

- ``socflow_runs{status}``, ``socflow_cases{status}``: rows by status.
- ``socflow_oldest_queued_run_age_seconds``: how long the oldest queued run has waited (alert on it: it
  grows when no worker consumes a queue or the sweeper is down).
- ``socflow_model_calls_total{backend,method,outcome}`` and ``socflow_model_call_latency_seconds``
  (a summary: ``_count`` and ``_sum``) from the ``model_calls`` audit table.
- ``socflow_queue_depth{queue}``: messages waiting in each broker queue (Redis ``LLEN``);
  ``socflow_broker_up``: whether the broker answered (absent without a broker).

The API serves them at ``/metrics`` (``socflow.api.routes_metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.schemas import now_utc
from socflow.tables import Case, ModelCall, WorkflowRun

INGEST_QUEUE = "ingest"
WORKFLOWS_QUEUE = "workflows"
# kombu's Redis transport keeps a priority's messages under "<queue>\x06\x16<priority>"
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def broker_queues(model_queue: str, spec_queues: Iterable[str] = ()) -> list[str]:
    return list(dict.fromkeys([INGEST_QUEUE, WORKFLOWS_QUEUE, model_queue, *spec_queues]))


def queue_depths(broker_url: str, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting per queue on a Redis broker (raises when Redis cannot be reached)."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        names = list(queues)
        pipe = client.pipeline(transaction=False)
        for name in names:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        counts = pipe.execute()
    finally:
        client.close()
    step = len(_PRIORITY_SUFFIXES)
    return {name: int(sum(counts[i * step : (i + 1) * step])) for i, name in enumerate(names)}


class SocflowCollector(Collector):
    def __init__(
        self, factory: sessionmaker[Session], *, broker_url: str = "", queues: Iterable[str] = ()
    ) -> None:
        self.factory = factory
        self.broker_url = broker_url
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        if self.broker_url:
            yield from self._broker()

    def _database(self) -> Iterator[Metric]:
        with self.factory() as s:
            runs = s.execute(select(WorkflowRun.status, func.count()).group_by(WorkflowRun.status)).all()
            cases = s.execute(select(Case.status, func.count()).group_by(Case.status)).all()
            oldest = s.scalar(select(func.min(WorkflowRun.created_at)).where(WorkflowRun.status == "queued"))
            outcome = case((ModelCall.error.is_(None), "ok"), else_="error")
            calls = s.execute(
                select(
                    ModelCall.backend,
                    ModelCall.method,
                    outcome,
                    func.count(),
                    func.coalesce(func.sum(ModelCall.latency_ms), 0.0),
                ).group_by(ModelCall.backend, ModelCall.method, outcome)
            ).all()
        g = GaugeMetricFamily("socflow_runs", "Workflow runs by status.", labels=["status"])
        for status, n in runs:
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("socflow_cases", "Cases by status.", labels=["status"])
        for status, n in cases:
            g.add_metric([status], n)
        yield g
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max((now_utc() - oldest).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "socflow_oldest_queued_run_age_seconds", "Age of the oldest queued run (0: none).", value=age
        )
        total = CounterMetricFamily(
            "socflow_model_calls", "Model calls recorded.", labels=["backend", "method", "outcome"]
        )
        latency = SummaryMetricFamily(
            "socflow_model_call_latency_seconds", "Model call latency.", labels=["backend", "method"]
        )
        per_method: dict[tuple[str, str], tuple[int, float]] = {}
        for backend, method, result, n, ms in calls:
            total.add_metric([backend, method, result], n)
            count, seconds = per_method.get((backend, method), (0, 0.0))
            per_method[(backend, method)] = (count + int(n), seconds + float(ms) / 1000.0)
        for (backend, method), (count, seconds) in sorted(per_method.items()):
            latency.add_metric([backend, method], count_value=count, sum_value=seconds)
        yield total
        yield latency

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("socflow_broker_up", "Whether the broker answered the scrape.")
        depth = GaugeMetricFamily("socflow_queue_depth", "Messages waiting per queue.", labels=["queue"])
        try:
            depths = queue_depths(self.broker_url, self.queues)
        except Exception:  # the broker is down: say so, and keep the database metrics
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for name, n in depths.items():
            depth.add_metric([name], n)
        yield up
        yield depth


def render(collector: Collector) -> bytes:
    """The Prometheus text exposition of one collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
