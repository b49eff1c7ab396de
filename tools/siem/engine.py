"""Batch evaluation: every enabled rule over a batch of events in one pass per log source.

The one-rule-at-a-time path (:meth:`EmbeddedSiem.run_compiled`) builds, for every rule, a CTE that parses
each candidate event's JSON again and extracts the rule's fields. Here the rules are grouped by their log
source condition (channel and event id, and the Security-log aliases of their category); for each group and
batch of events (a rowid range) the group's fields are extracted ONCE into a temporary table, then each rule's
pySigma condition runs over that table. The conditions are the same SQL as the one-rule path (same
``COLLATE NOCASE`` columns, same ``''`` for a missing field, same ``REGEXP``), so both paths raise the same
matches; ``tests/siem/test_engine.py`` checks it on a sample.

Matches come back as (rule, event rowid) pairs; :func:`alerts_from_matches` groups them per rule and host as
``detect`` does.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from socflow.errors import SiemError
from tools.siem.detect import DetectReport, GenericAlert, alert_for
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import SiemEvent, SkipReason
from tools.siem.sigma_rules import (
    CTE_NAME,
    RAW_COLUMN,
    ROWID_COLUMN,
    CompiledRule,
    _json_extract,
    _quote_ident,
)

DEFAULT_BATCH = 50_000
_TEMP = f"temp.{CTE_NAME}"


@dataclass
class _Group:
    logsource_sql: str
    params: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    rules: list[tuple[CompiledRule, str]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    needs_raw: bool = False

    def add(self, rule: CompiledRule) -> None:
        sql = _rule_sql(rule)
        self.rules.append((rule, sql))
        for name in rule.fields:
            if name not in self.fields:
                self.fields.append(name)
        self.needs_raw = self.needs_raw or RAW_COLUMN in sql

    def create_sql(self) -> str:
        """The temporary table: columns without type affinity (values kept as extracted) and NOCASE, as
        the one-rule path's CTE columns (``CREATE TABLE ... AS SELECT`` would drop the collation)."""
        columns = [f"{ROWID_COLUMN} INTEGER", RAW_COLUMN]
        columns.extend(f"{_quote_ident(name)} COLLATE NOCASE" for name in self.fields)
        return f"CREATE TEMP TABLE {CTE_NAME} ({', '.join(columns)})"

    def fill_sql(self) -> str:
        columns = ["e.rowid", "e.raw" if self.needs_raw else "''"]
        for name in self.fields:
            extracts = [_json_extract(name), *(_json_extract(a) for a in self.aliases.get(name, ()))]
            columns.append(f"coalesce({', '.join(extracts)}, '')")
        where = "e.rowid > ? AND e.rowid <= ?"
        if self.logsource_sql:
            where += f" AND ({self.logsource_sql})"
        return f"INSERT INTO {_TEMP} SELECT {', '.join(columns)} FROM events e WHERE {where}"


def _rule_sql(rule: CompiledRule) -> str:
    return rule.where_sql.replace("SELECT *", f"SELECT {ROWID_COLUMN}", 1)


class BatchDetector:
    """Compiled rules grouped by log source, evaluated per batch of events of an embedded store."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        groups: dict[tuple[str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]], _Group] = {}
        self.rules: list[CompiledRule] = []
        for rule in rules:
            key = (rule.logsource_sql, rule.logsource_params, tuple(sorted(rule.aliases.items())))
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(rule.logsource_sql, rule.logsource_params, dict(rule.aliases))
            group.add(rule)
            self.rules.append(rule)
        self.groups = list(groups.values())

    def matches(
        self, siem: EmbeddedSiem, after_rowid: int, upto_rowid: int, report: DetectReport | None = None
    ) -> dict[str, list[int]]:
        """Rule id -> matching event rowids in ``(after_rowid, upto_rowid]``, ascending."""
        conn = siem.connection
        out: dict[str, list[int]] = {}
        for group in self.groups:
            conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
            try:
                conn.execute(group.create_sql())
                conn.execute(group.fill_sql(), (after_rowid, upto_rowid, *group.params))
                if conn.execute(f"SELECT 1 FROM {_TEMP} LIMIT 1").fetchone() is None:
                    continue
                for rule, sql in group.rules:
                    try:
                        rows = conn.execute(sql).fetchall()
                    except sqlite3.Error as exc:
                        if report is not None:
                            report.failed.append(
                                SkipReason(source=rule.source or rule.rule_id, reason=f"query failed: {exc}")
                            )
                        continue
                    if rows:
                        out.setdefault(rule.rule_id, []).extend(sorted(r[0] for r in rows))
            except sqlite3.Error as exc:
                raise SiemError(f"batch detection failed: {exc}") from exc
            finally:
                conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
        return out

    def iter_batches(
        self, siem: EmbeddedSiem, after_rowid: int = 0, batch: int = DEFAULT_BATCH
    ) -> Iterator[tuple[int, dict[str, list[int]]]]:
        """(last rowid of the batch, matches) for every batch of events after ``after_rowid``."""
        last = siem.max_rowid()
        lo = after_rowid
        while lo < last:
            hi = min(lo + batch, last)
            yield hi, self.matches(siem, lo, hi)
            lo = hi


def alerts_from_matches(
    siem: EmbeddedSiem,
    rules: Iterable[CompiledRule],
    matches: dict[str, list[int]],
    report: DetectReport | None = None,
) -> Iterator[GenericAlert]:
    """One alert per rule and host, in rule order (as :func:`tools.siem.detect.detect`)."""
    report = report if report is not None else DetectReport()
    for rule in rules:
        rowids = matches.get(rule.rule_id)
        if not rowids:
            continue
        events = siem.events_by_rowid(rowids)
        report.rules_fired += 1
        by_host: dict[str, list[SiemEvent]] = defaultdict(list)
        for event in events:
            by_host[(event.host or "").lower()].append(event)
        for host in sorted(by_host):
            report.alerts += 1
            yield alert_for(rule, by_host[host])


def detect_batched(
    siem: EmbeddedSiem, rules: list[CompiledRule], report: DetectReport | None = None
) -> Iterator[GenericAlert]:
    """Drop-in for :func:`tools.siem.detect.detect`: the same alerts, computed in batches."""
    detector = BatchDetector(rules)
    merged: dict[str, list[int]] = {}
    for _, found in detector.iter_batches(siem):
        for rule_id, rowids in found.items():
            merged.setdefault(rule_id, []).extend(rowids)
    yield from alerts_from_matches(siem, rules, merged, report)
