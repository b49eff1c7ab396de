"""Streaming detection: the enabled pack over the events appended since a persisted cursor, each alert once.

State lives in the SIEM store itself (same SQLite file, so the cursor moves in the same transaction as the
detections it covers)::

    detect_cursor(name, last_rowid, updated_at)           where the previous pass stopped
    detections(rule_id, event_rowid, host, bucket, status, reason, alert_ref, at)
                                                          one row per (rule, event); status pending |
                                                          emitted | suppressed (reason: the suppression id)
    rule_overrides(rule_id, enabled, actor, at)           ``siem rules enable|disable``

A pass: (1) evaluate the batch (all rules, one pass per log source), write the matches and advance the cursor
in one transaction; (2) apply suppressions to pending detections; (3) group the pending ones per rule, host
and bucket into alerts whose ``source_ref`` is a hash of (rule, host, bucket), hand them to the sink, then
mark them emitted. A crash between (3)'s sink and the mark re-sends the same ``source_ref`` next time, which
ingest drops as a duplicate: each alert exactly once. The bucket is the aggregation window of the event time
when aggregation is configured, else the batch's last rowid.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tools.siem.detect import DetectReport, GenericAlert, alert_for
from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import DEFAULT_BATCH, BatchDetector
from tools.siem.models import SiemEvent, stable_id
from tools.siem.normalize import parse_timestamp
from tools.siem.sigma_rules import CompiledRule
from tools.siem.suppress import Suppressed, SuppressionConfig

CURSOR = "sigma-pack"
PENDING, EMITTED, SUPPRESSED = "pending", "emitted", "suppressed"

STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS detect_cursor (
    name TEXT PRIMARY KEY, last_rowid INTEGER NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS detections (
    rule_id TEXT NOT NULL,
    event_rowid INTEGER NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    bucket TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    alert_ref TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (rule_id, event_rowid)
);
CREATE INDEX IF NOT EXISTS ix_detections_status ON detections (status, rule_id);
CREATE INDEX IF NOT EXISTS ix_detections_host ON detections (host, at);
CREATE TABLE IF NOT EXISTS rule_overrides (
    rule_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL
);
"""

AlertSink = Callable[[list[GenericAlert]], None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DetectionState:
    """The detection tables of one embedded store."""

    def __init__(self, siem: EmbeddedSiem) -> None:
        self.siem = siem
        self.conn: sqlite3.Connection = siem.connection
        self.conn.executescript(STATE_SCHEMA)
        self.conn.commit()

    def cursor(self, name: str = CURSOR) -> int:
        row = self.conn.execute("SELECT last_rowid FROM detect_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def overrides(self) -> dict[str, bool]:
        return {r[0]: bool(r[1]) for r in self.conn.execute("SELECT rule_id, enabled FROM rule_overrides")}

    def set_override(self, rule_id: str, enabled: bool | None, actor: str) -> None:
        if enabled is None:
            self.conn.execute("DELETE FROM rule_overrides WHERE rule_id = ?", (rule_id,))
        else:
            self.conn.execute(
                "INSERT INTO rule_overrides (rule_id, enabled, actor, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (rule_id) DO UPDATE SET enabled = excluded.enabled, actor = excluded.actor, "
                "at = excluded.at",
                (rule_id, int(enabled), actor, _now()),
            )
        self.conn.commit()

    def record(self, matches: dict[str, list[int]], hosts: dict[int, str], buckets: dict[int, str], upto: int,
               name: str = CURSOR) -> int:  # fmt: skip
        """Store a batch's matches and move the cursor, in one transaction; returns new detections."""
        now = _now()
        rows = [
            (rule_id, rowid, hosts.get(rowid, ""), buckets[rowid], PENDING, now)
            for rule_id, rowids in matches.items()
            for rowid in rowids
        ]
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO detections (rule_id, event_rowid, host, bucket, status, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            inserted = self.conn.total_changes - before
            self.conn.execute(
                "INSERT INTO detect_cursor (name, last_rowid, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_rowid = excluded.last_rowid, "
                "updated_at = excluded.updated_at",
                (name, upto, now),
            )
        return inserted

    def pending(self) -> list[tuple[str, int, str, str]]:
        return [
            (r[0], int(r[1]), r[2], r[3])
            for r in self.conn.execute(
                "SELECT rule_id, event_rowid, host, bucket FROM detections WHERE status = ? "
                "ORDER BY rule_id, event_rowid",
                (PENDING,),
            )
        ]

    def mark(self, keys: Iterable[tuple[str, int]], status: str, *, reason: str | None = None,
             alert_ref: str | None = None) -> None:  # fmt: skip
        with self.conn:
            self.conn.executemany(
                "UPDATE detections SET status = ?, reason = ?, alert_ref = ? "
                "WHERE rule_id = ? AND event_rowid = ?",
                [(status, reason, alert_ref, rule_id, rowid) for rule_id, rowid in keys],
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """rule id -> {status: detections} (for ``siem rules list``)."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for rule_id, status, n in self.conn.execute(
            "SELECT rule_id, status, count(*) FROM detections GROUP BY rule_id, status"
        ):
            out[rule_id][status] = int(n)
        return dict(out)


@dataclass
class PassReport:
    events: int = 0
    detections: int = 0
    alerts: int = 0
    suppressed: Suppressed = field(default_factory=Suppressed)
    below_threshold: int = 0
    seconds: float = 0.0
    cursor: int = 0
    proposals: int = 0  # tuning proposals offered after the pass (cases closed as false positive)


def _bucket(event_time: str | None, window: int, batch_end: int) -> str:
    if window <= 0:
        return f"batch:{batch_end}"
    stamp = parse_timestamp(event_time)
    if stamp is None:
        return f"batch:{batch_end}"
    start = int(stamp.timestamp()) // window * window
    return f"window:{window}:{start}"


class StreamDetector:
    """Detection passes over one store with one rule set (build once per process, call :meth:`run_pass`)."""

    def __init__(self, siem: EmbeddedSiem, rules: list[CompiledRule], config: SuppressionConfig | None = None,
                 *, batch: int = DEFAULT_BATCH, cursor_name: str = CURSOR) -> None:  # fmt: skip
        self.siem = siem
        self.state = DetectionState(siem)
        self.rules = {rule.rule_id: rule for rule in rules}
        self.detector = BatchDetector(rules)
        self.config = config or SuppressionConfig()
        self.batch = batch
        self.cursor_name = cursor_name

    def run_pass(self, sink: AlertSink, *, max_events: int | None = None) -> PassReport:
        started = time.perf_counter()
        report = PassReport()
        lo = self.state.cursor(self.cursor_name)
        last = self.siem.max_rowid()
        if max_events is not None:
            last = min(last, lo + max_events)
        window = self.config.aggregation.window_seconds
        while lo < last:
            hi = min(lo + self.batch, last)
            matches = self.detector.matches(self.siem, lo, hi)
            rowids = sorted({r for ids in matches.values() for r in ids})
            meta = self._meta(rowids)
            hosts = {r: (meta[r][0] or "").lower() for r in rowids}
            buckets = {r: _bucket(meta[r][1], window, hi) for r in rowids}
            report.detections += self.state.record(matches, hosts, buckets, hi, self.cursor_name)
            report.events += hi - lo
            lo = hi
        report.cursor = lo
        self._emit(sink, report)
        report.seconds = time.perf_counter() - started
        return report

    def _meta(self, rowids: list[int]) -> dict[int, tuple[str | None, str | None]]:
        out: dict[int, tuple[str | None, str | None]] = {}
        conn = self.siem.connection
        for start in range(0, len(rowids), 500):
            chunk = rowids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f'SELECT rowid, "host.name", "@timestamp" FROM events WHERE rowid IN ({marks})'
            out.update({int(r[0]): (r[1], r[2]) for r in conn.execute(sql, chunk)})
        return out

    def _emit(self, sink: AlertSink, report: PassReport) -> None:
        groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for rule_id, rowid, host, bucket in self.state.pending():
            groups[(rule_id, host, bucket)].append(rowid)
        alerts: list[tuple[GenericAlert, list[tuple[str, int]]]] = []
        for (rule_id, host, bucket), rowids in sorted(groups.items()):
            rule = self.rules.get(rule_id)
            if rule is None:  # the rule was disabled since: its detections stay pending, unsent
                continue
            kept: list[SiemEvent] = []
            keys: list[tuple[str, int]] = []
            for rowid, event in self.siem.rowid_events(rowids):
                suppression = self.config.suppressed_by(rule_id, event)
                if suppression is not None:
                    self.state.mark([(rule_id, rowid)], SUPPRESSED, reason=suppression)
                    report.suppressed.add(suppression)
                else:
                    kept.append(event)
                    keys.append((rule_id, rowid))
            if not kept:
                continue
            threshold = self.config.threshold(rule_id)
            if threshold is not None and len(kept) < threshold.min_events:
                report.below_threshold += len(kept)
                continue
            alert = alert_for(rule, kept)
            alert.source_ref = f"sigma-{stable_id(rule_id, host, bucket)}"
            alerts.append((alert, keys))
        if not alerts:
            return
        sink([alert for alert, _ in alerts])
        for alert, keys in alerts:
            self.state.mark(keys, EMITTED, alert_ref=alert.source_ref)
        report.alerts += len(alerts)


def collect(report: DetectReport | None = None) -> tuple[list[GenericAlert], AlertSink]:
    """A sink that keeps alerts in a list (the CLI writes them out; tests read them)."""
    out: list[GenericAlert] = []

    def sink(alerts: list[GenericAlert]) -> None:
        out.extend(alerts)
        if report is not None:
            report.alerts += len(alerts)

    return out, sink
