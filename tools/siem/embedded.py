"""The embedded backend: events in their own SQLite file (not the socflow database).

Table ``events``: the raw normalized event as JSON (original Windows field names, for Sigma) plus indexed
ECS-style columns for entity and time lookups. The event id is a content hash, so loading the same file twice
(or the ``.evtx`` and ``.json`` forms of one sample) stores each event once.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from sigma.rule import SigmaRule

from socflow.errors import SiemError
from tools.siem.loaders import discover, read_path
from tools.siem.models import (
    ECS_FIELDS,
    BackendKind,
    EntityQuery,
    LoadReport,
    SiemEvent,
    SkipReason,
    canonical_json,
    content_event_id,
)
from tools.siem.normalize import ecs_columns, iso_utc
from tools.siem.sigma_rules import CompiledRule, compile_rule, parse_rule

_COLUMNS = ", ".join(f'"{name}"' for name in ECS_FIELDS)
_NOCASE = {"host.name", "user.name", "process.name", "winlog.channel", "event.provider"}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT NOT NULL UNIQUE,
    {", ".join(f'"{name}" TEXT' + (" COLLATE NOCASE" if name in _NOCASE else "") for name in ECS_FIELDS)},
    source TEXT,
    raw TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event_fields (name TEXT PRIMARY KEY) WITHOUT ROWID;
"""

INDEXES = (
    'CREATE INDEX IF NOT EXISTS ix_events_host_ts ON events ("host.name", "@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_user_ts ON events ("user.name", "@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_sip_ts ON events ("source.ip", "@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_dip_ts ON events ("destination.ip", "@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_proc_ts ON events ("process.name", "@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_ts ON events ("@timestamp")',
    'CREATE INDEX IF NOT EXISTS ix_events_channel_code ON events ("winlog.channel", "event.code")',
)


@lru_cache(maxsize=4096)
def _compiled_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool:
    if pattern is None or value is None:
        return False
    try:
        return _compiled_regex(pattern).search(str(value)) is not None
    except re.error:
        return False


class EmbeddedSiem:
    """SIEM backend over a local SQLite file (``":memory:"`` for a throwaway store)."""

    kind = BackendKind.EMBEDDED

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, cached_statements=4096)
            self._conn.create_function("regexp", 2, _regexp, deterministic=True)
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self.create_indexes()
        except sqlite3.Error as exc:
            raise SiemError(f"cannot open SIEM store {self.path}: {exc}") from exc
        self._known_fields: set[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddedSiem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_indexes(self) -> None:
        for statement in INDEXES:
            self._conn.execute(statement)
        self._conn.commit()

    def drop_indexes(self) -> None:
        """For bulk loads: drop the entity indexes, load, then :meth:`create_indexes`."""
        for statement in INDEXES:
            name = statement.split(" ON ")[0].rsplit(" ", 1)[-1]
            self._conn.execute(f"DROP INDEX IF EXISTS {name}")
        self._conn.commit()

    # -- loading ---------------------------------------------------------------------------------------
    def insert_events(self, events: Iterable[dict[str, Any]], *, source: str = "") -> tuple[int, int]:
        """Insert normalized flat events; returns (inserted, duplicates)."""
        rows = []
        fields: set[str] = set()
        for flat in events:
            columns = ecs_columns(flat)
            fields.update(flat)
            raw = canonical_json(flat)
            rows.append((content_event_id(flat, raw), *(columns[name] for name in ECS_FIELDS), source, raw))
        return self._insert_rows(rows, fields)

    def _insert_rows(self, rows: list[tuple[Any, ...]], fields: set[str]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        placeholders = ", ".join("?" * (len(ECS_FIELDS) + 3))
        cursor = self._conn.executemany(
            f"INSERT OR IGNORE INTO events (event_id, {_COLUMNS}, source, raw) VALUES ({placeholders})", rows
        )
        inserted = cursor.rowcount  # executemany: the sum of rows inserted
        self._conn.executemany("INSERT OR IGNORE INTO event_fields (name) VALUES (?)", [(f,) for f in fields])
        self._conn.commit()
        self._known_fields = None
        return inserted, len(rows) - inserted

    def insert_rows(self, rows: list[tuple[Any, ...]], fields: Iterable[str] = ()) -> int:
        """Fast path for generated data: rows already shaped (event_id, *ECS_FIELDS, source, raw)."""
        inserted, _ = self._insert_rows(rows, set(fields))
        return inserted

    def load(
        self,
        paths: Iterable[Path],
        *,
        batch_size: int = 2000,
        on_file: Callable[[Path, int, int], None] | None = None,
    ) -> LoadReport:
        """Load log files/directories. Bad records and unsupported files are skipped, with reasons."""
        report = LoadReport()
        files = discover(paths)
        for index, path in enumerate(files, start=1):
            report.files += 1
            batch: list[dict[str, Any]] = []
            for parsed in read_path(path):
                if parsed.event is None:
                    report.skipped.append(SkipReason(source=parsed.source, reason=parsed.skip_reason or "?"))
                    continue
                batch.append(parsed.event)
                if len(batch) >= batch_size:
                    self._count(report, self.insert_events(batch, source=str(path)))
                    batch = []
            self._count(report, self.insert_events(batch, source=str(path)))
            if on_file is not None:
                on_file(path, index, len(files))
        return report

    @staticmethod
    def _count(report: LoadReport, result: tuple[int, int]) -> None:
        report.loaded += result[0]
        report.duplicates += result[1]

    # -- queries ---------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def known_fields(self) -> set[str]:
        if self._known_fields is None:
            self._known_fields = {r[0] for r in self._conn.execute("SELECT name FROM event_fields")}
        return self._known_fields

    def search(self, query: EntityQuery) -> list[SiemEvent]:
        """Events matching all given entities within the time window, oldest first, at most ``limit``."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("host.name", query.host),
            ("user.name", query.user),
            ("process.name", query.process),
        ):
            if value:
                clauses.append(f'"{column}" = ?')
                params.append(value)
        if query.ip:
            clauses.append('("source.ip" = ? OR "destination.ip" = ?)')
            params.extend([query.ip, query.ip])
        if query.hash:
            clauses.append('instr(upper("process.hash"), upper(?)) > 0')
            params.append(query.hash)
        if query.since:
            clauses.append('"@timestamp" >= ?')
            params.append(iso_utc(query.since))
        if query.until:
            clauses.append('"@timestamp" <= ?')
            params.append(iso_utc(query.until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f'SELECT rowid, event_id, {_COLUMNS}, raw FROM events {where} ORDER BY "@timestamp" LIMIT ?'
        params.append(query.limit)
        return [self._event(row) for row in self._conn.execute(sql, params)]

    def _event(self, row: tuple[Any, ...]) -> SiemEvent:
        values = dict(zip(ECS_FIELDS, row[2:-1], strict=True))
        return SiemEvent(
            backend=self.kind,
            event_id=row[1],
            timestamp=values["@timestamp"],
            host=values["host.name"],
            user=values["user.name"],
            source_ip=values["source.ip"],
            destination_ip=values["destination.ip"],
            process=values["process.name"],
            command_line=values["process.command_line"],
            event_code=values["event.code"],
            channel=values["winlog.channel"],
            raw=json.loads(row[-1]),
        )

    def run_compiled(self, compiled: CompiledRule, *, limit: int | None = None) -> list[SiemEvent]:
        sql, params = compiled.sql()
        select = f"SELECT rowid, event_id, {_COLUMNS}, raw FROM events"
        rowid_sql = f'{select} WHERE rowid IN ({sql}) ORDER BY "@timestamp", rowid'
        if limit is not None:
            rowid_sql += f" LIMIT {int(limit)}"
        try:
            return [self._event(row) for row in self._conn.execute(rowid_sql, params)]
        except sqlite3.Error as exc:
            raise SiemError(f"rule {compiled.rule_id}: query failed: {exc}") from exc

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection, for the batch detector and the detection state (same file)."""
        return self._conn

    def max_rowid(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])

    def events_by_rowid(self, rowids: list[int]) -> list[SiemEvent]:
        """Events by store rowid, ordered as :meth:`run_compiled` orders them (time, then rowid)."""
        return [event for _, event in self.rowid_events(rowids)]

    def rowid_events(self, rowids: list[int]) -> list[tuple[int, SiemEvent]]:
        """(rowid, event) pairs, ordered as :meth:`run_compiled` orders events (time, then rowid)."""
        pairs: list[tuple[int, SiemEvent]] = []
        select = f"SELECT rowid, event_id, {_COLUMNS}, raw FROM events"
        for start in range(0, len(rowids), 500):
            chunk = rowids[start : start + 500]
            sql = f"{select} WHERE rowid IN ({', '.join('?' * len(chunk))})"
            pairs.extend((int(row[0]), self._event(row)) for row in self._conn.execute(sql, chunk))
        pairs.sort(key=lambda pair: (pair[1].timestamp is not None, pair[1].timestamp or "", pair[0]))
        return pairs

    def hunt(self, rule: SigmaRule | str, *, limit: int = 100) -> list[SiemEvent]:
        """Events matching a Sigma rule (a parsed rule or its YAML text)."""
        parsed = parse_rule(rule) if isinstance(rule, str) else rule
        return self.run_compiled(compile_rule(parsed), limit=limit)

    def iter_all(self) -> Iterator[SiemEvent]:
        for row in self._conn.execute(f"SELECT rowid, event_id, {_COLUMNS}, raw FROM events ORDER BY rowid"):
            yield self._event(row)
