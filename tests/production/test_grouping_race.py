"""Race-free grouping on PostgreSQL: concurrent ingesters open exactly one case per grouping key."""

from __future__ import annotations

import json
import multiprocessing
from typing import Any

import pytest
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.grouping import KeyGrouper
from socflow.ingest import IngestService
from socflow.tables import Alert, Case

pytestmark = pytest.mark.postgres

PER_PROCESS = 500


def _alert(worker: int, n: int) -> dict[str, Any]:
    return {
        "source": "race",
        "source_ref": f"w{worker}-{n}",
        "title": "Brute force",
        "severity": "high",
        "rule": {"id": "brute-force"},
        "entities": {"hosts": ["DC01"], "users": ["admin"]},
    }


def _ingest(url: str, worker: int, start: Any) -> None:
    engine = make_engine(url)
    service = IngestService(session_factory(engine), grouper=KeyGrouper(["rule", "hosts", "users"], 3600))
    start.wait(30)
    for n in range(PER_PROCESS):  # one transaction per alert: the most chances to race
        report = service.ingest_text(json.dumps(_alert(worker, n)), actor=f"ingester-{worker}")
        assert report.accepted == 1
    engine.dispose()


def test_two_processes_one_key_open_exactly_one_case(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_ingest, args=(pg_url, w, start)) for w in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0, 0]
    engine = make_engine(pg_url)
    with session_factory(engine)() as session:
        cases = session.scalar(select(func.count()).select_from(Case))
        alerts = session.scalar(select(func.count()).select_from(Alert))
        per_case = session.scalar(select(func.count(func.distinct(Alert.case_id))))
    engine.dispose()
    assert (cases, alerts, per_case) == (1, 2 * PER_PROCESS, 1)
