"""Trim checkpoint history: finished runs keep their final checkpoint, their older checkpoints go.

The runner checkpoints when a graph exits and compacts a run's checkpoints itself when the run completes
(``Runner._drive``); this trims the rest (failed and superseded runs, runs from before that). Only the
last checkpoint matters once the run is final (``completed``, ``failed``, ``superseded``): it holds the
final state that ``WorkflowSpec.read_state`` and the UI read. Runs that may still move (queued, running,
awaiting input) are never touched; nor are alerts, cases, notes, model calls or audit events. Dead letters
(refused ingest items) older than the same cut-off go too, and at most ``deadletters.MAX_ROWS`` stay.

PostgreSQL: LangGraph's ``PostgresSaver.prune(strategy="keep_latest")`` (the kept checkpoint's pending
writes and blobs stay). SQLite: the same rule on the SQLite saver's ``checkpoints`` and ``writes``
tables. ``vacuum=True`` then returns the space (``VACUUM``; on SQLite the file shrinks).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from socflow import deadletters
from socflow.checkpoints import keep_latest, open_checkpointer
from socflow.db import is_sqlite
from socflow.runner import FINAL
from socflow.schemas import now_utc
from socflow.tables import WorkflowRun

PG_TABLES = ("checkpoints", "checkpoint_writes", "checkpoint_blobs")
SQLITE_TABLES = ("checkpoints", "writes")
BATCH = 200


@dataclass(frozen=True)
class PruneReport:
    runs: int
    rows_before: int
    rows_after: int
    bytes_before: int
    bytes_after: int
    dead_letters: int = 0

    def __str__(self) -> str:
        return (
            f"{self.runs} finished runs pruned; checkpoint rows {self.rows_before} -> {self.rows_after}; "
            f"{self.dead_letters} dead letters dropped; "
            f"database {self.bytes_before:,} -> {self.bytes_after:,} bytes"
        )


def database_bytes(engine: Engine) -> int:
    """The database's size: ``pg_database_size`` on PostgreSQL, the file (and its WAL) on SQLite."""
    url = engine.url
    if is_sqlite(str(url)):
        path = url.database or ""
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if path and os.path.exists(p))
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)


def checkpoint_rows(engine: Engine) -> int:
    tables = SQLITE_TABLES if is_sqlite(str(engine.url)) else PG_TABLES
    total = 0
    with engine.connect() as conn:
        for table in tables:
            try:
                total += int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            except Exception:  # the checkpointer has not created its tables yet
                conn.rollback()
    return total


def finished_runs(factory: sessionmaker[Session], before: datetime) -> list[str]:
    with factory() as s:
        return list(
            s.scalars(
                select(WorkflowRun.id).where(
                    WorkflowRun.status.in_([f.value for f in FINAL]), WorkflowRun.finished_at < before
                )
            )
        )


def prune_checkpoints(
    engine: Engine,
    factory: sessionmaker[Session],
    *,
    older_than: timedelta,
    vacuum: bool = False,
    clock: Callable[[], datetime] = now_utc,
) -> PruneReport:
    """Keep only the final checkpoint of runs that finished more than ``older_than`` ago."""
    url = engine.url.render_as_string(hide_password=False)
    bytes_before, rows_before = database_bytes(engine), checkpoint_rows(engine)
    runs = finished_runs(factory, clock() - older_than)
    for i in range(0, len(runs), BATCH):
        chunk = runs[i : i + BATCH]
        with open_checkpointer(url) as saver:
            keep_latest(saver, chunk)
    dropped = deadletters.prune(factory, older_than=older_than, clock=clock)
    if vacuum:
        _vacuum(engine)
    return PruneReport(
        dead_letters=dropped,
        runs=len(runs),
        rows_before=rows_before,
        rows_after=checkpoint_rows(engine),
        bytes_before=bytes_before,
        bytes_after=database_bytes(engine),
    )


def _vacuum(engine: Engine) -> None:
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    with auto.connect() as conn:
        if is_sqlite(str(engine.url)):
            conn.execute(text("VACUUM"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            for table in PG_TABLES:
                conn.execute(text(f"VACUUM (ANALYZE) {table}"))
