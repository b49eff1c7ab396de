"""Batch evaluation: every enabled rule over a batch of events in one pass per log source.

The one-rule-at-a-time path (:meth:`EmbeddedSiem.run_compiled`) builds, for every rule, a CTE that parses
each candidate event's JSON again and extracts the rule's fields. Here the rules are grouped by their log
source condition (channel and event id, and the Security-log aliases of their category); for each group and
batch of events (a rowid range) the group's fields are extracted ONCE into a temporary table, then each rule's
pySigma condition runs over that table. The conditions are the same SQL as the one-rule path (same
``COLLATE NOCASE`` columns, same ``''`` for a missing field, same ``REGEXP``), so both paths raise the same
matches; ``tests/siem/test_engine.py`` checks it on a sample.

Before that, a literal prefilter (:mod:`tools.siem.prefilter`) finds, in one Aho-Corasick pass over the
batch's events, the literals each rule's condition requires; a rule then runs only on the events that hold
them (and not at all when none does), and a group's table is filled only with candidate events when every
rule of the group has literals. ``BatchDetector(rules, prefilter=False)`` is the unfiltered engine; both
raise the same matches (``tests/siem/test_prefilter.py`` checks it on the development store).

Matches come back as (rule, event rowid) pairs; :func:`alerts_from_matches` groups them per rule and host as
``detect`` does.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from socflow.errors import SiemError
from tools.siem.detect import DetectReport, GenericAlert, alert_for
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import SiemEvent, SkipReason
from tools.siem.prefilter import (
    LiteralIndex,
    Requirement,
    condition_of,
    literal_index,
    requirement,
)
from tools.siem.sigma_rules import (
    CTE_NAME,
    RAW_COLUMN,
    ROWID_COLUMN,
    CompiledRule,
    _json_extract,
    _quote_ident,
)

DEFAULT_BATCH = 50_000
#: A group of fewer rules with literals runs unfiltered: scanning its events' text costs more than
#: evaluating a handful of rules on them.
MIN_PREFILTER_RULES = 5
_TEMP = f"temp.{CTE_NAME}"


@dataclass
class _Group:
    logsource_sql: str
    params: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    rules: list[tuple[CompiledRule, str]] = field(default_factory=list)
    requirements: list[Requirement] = field(default_factory=list)
    filtered_sql: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    needs_raw: bool = False

    @property
    def all_filtered(self) -> bool:
        return all(self.requirements)

    def add(self, rule: CompiledRule, prefilter: bool) -> None:
        sql = _rule_sql(rule)
        self.rules.append((rule, sql))
        req = requirement(rule.where_sql, rule.aliases) if prefilter else ()
        self.requirements.append(req)
        self.filtered_sql.append(_filtered_sql(rule) if req else "")
        for name in rule.fields:
            if name not in self.fields:
                self.fields.append(name)
        self.needs_raw = self.needs_raw or RAW_COLUMN in sql

    def create_sql(self) -> str:
        """The temporary table: columns without type affinity (values kept as extracted) and NOCASE, as
        the one-rule path's CTE columns (``CREATE TABLE ... AS SELECT`` would drop the collation)."""
        columns = [f"{ROWID_COLUMN} INTEGER PRIMARY KEY", RAW_COLUMN]
        columns.extend(f"{_quote_ident(name)} COLLATE NOCASE" for name in self.fields)
        return f"CREATE TEMP TABLE {CTE_NAME} ({', '.join(columns)})"

    def scan_sql(self) -> str:
        """The group's events in the batch with their stored JSON as UTF-8 bytes."""
        where = "e.rowid > ? AND e.rowid <= ?"
        if self.logsource_sql:
            where += f" AND ({self.logsource_sql})"
        return f"SELECT e.rowid, CAST(e.raw AS BLOB) FROM events e WHERE {where}"

    def fill_sql(self, only: bool = False) -> str:
        columns = ["e.rowid", "e.raw" if self.needs_raw else "''"]
        for name in self.fields:
            extracts = [_json_extract(name), *(_json_extract(a) for a in self.aliases.get(name, ()))]
            columns.append(f"coalesce({', '.join(extracts)}, '')")
        where = "e.rowid > ? AND e.rowid <= ?"
        if self.logsource_sql:
            where += f" AND ({self.logsource_sql})"
        if only:
            where += " AND e.rowid IN (SELECT value FROM json_each(?))"
        return f"INSERT INTO {_TEMP} SELECT {', '.join(columns)} FROM events e WHERE {where}"


def _rule_sql(rule: CompiledRule) -> str:
    return rule.where_sql.replace("SELECT *", f"SELECT {ROWID_COLUMN}", 1)


def _filtered_sql(rule: CompiledRule) -> str:
    """The rule's condition restricted to candidate rowids (a JSON array parameter)."""
    return (
        f"SELECT {ROWID_COLUMN} FROM {CTE_NAME} WHERE {ROWID_COLUMN} IN (SELECT value FROM json_each(?)) "
        f"AND ({condition_of(rule.where_sql)})"
    )


@dataclass
class PrefilterStats:
    """What the prefilter saved: rule evaluations run and skipped, events in candidate sets."""

    rules_filtered: int = 0
    rules_unfiltered: int = 0
    evaluations: int = 0
    skipped: int = 0
    candidate_events: int = 0


class BatchDetector:
    """Compiled rules grouped by log source, evaluated per batch of events of an embedded store.

    ``prefilter=True`` (the default) screens each batch for the literals the rules require first; ``False``
    evaluates every rule on every event of its log source (the reference the prefilter is tested against).
    """

    def __init__(self, rules: Iterable[CompiledRule], *, prefilter: bool = True) -> None:
        groups: dict[tuple[str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]], _Group] = {}
        self.rules: list[CompiledRule] = []
        self.prefilter = prefilter
        for rule in rules:
            key = (rule.logsource_sql, rule.logsource_params, tuple(sorted(rule.aliases.items())))
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(rule.logsource_sql, rule.logsource_params, dict(rule.aliases))
            group.add(rule, prefilter)
            self.rules.append(rule)
        self.groups = list(groups.values())
        for group in self.groups:
            # A group whose rules search the raw JSON would copy it into the table: scanning it is cheaper.
            if sum(1 for req in group.requirements if req) < MIN_PREFILTER_RULES and not group.needs_raw:
                group.requirements = [()] * len(group.requirements)
        self.indexes = [
            literal_index(tuple(g.requirements)) if any(g.requirements) else None for g in self.groups
        ]
        self.stats = PrefilterStats(
            rules_filtered=sum(1 for g in self.groups for req in g.requirements if req),
            rules_unfiltered=sum(1 for g in self.groups for req in g.requirements if not req),
        )

    def _candidates(
        self, conn: sqlite3.Connection, group: _Group, index: LiteralIndex, bounds: tuple[object, ...]
    ) -> tuple[set[int], list[set[int] | None]]:
        """(the group's events in the batch, candidate events per rule: None for a rule without literals)."""
        rows: Iterable[tuple[int, bytes]] = conn.execute(group.scan_sql(), bounds)
        members, found = index.scan(rows)
        return members, [index.candidates(req, found) if req else None for req in group.requirements]

    def matches(
        self, siem: EmbeddedSiem, after_rowid: int, upto_rowid: int, report: DetectReport | None = None
    ) -> dict[str, list[int]]:
        """Rule id -> matching event rowids in ``(after_rowid, upto_rowid]``, ascending."""
        conn = siem.connection
        out: dict[str, list[int]] = {}
        for group, index in zip(self.groups, self.indexes, strict=True):
            conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
            try:
                bounds = (after_rowid, upto_rowid, *group.params)
                candidates: list[set[int] | None] = [None] * len(group.rules)
                if index is not None:
                    members, candidates = self._candidates(conn, group, index, bounds)
                    if not members:
                        continue
                    if group.all_filtered:
                        union: set[int] = set().union(*(c for c in candidates if c is not None))
                        if not union:
                            self.stats.skipped += len(group.rules)
                            continue
                        conn.execute(group.create_sql())
                        conn.execute(group.fill_sql(only=True), (*bounds, json.dumps(sorted(union))))
                    else:
                        conn.execute(group.create_sql())
                        conn.execute(group.fill_sql(), bounds)
                else:
                    conn.execute(group.create_sql())
                    conn.execute(group.fill_sql(), bounds)
                    if conn.execute(f"SELECT 1 FROM {_TEMP} LIMIT 1").fetchone() is None:
                        continue
                for i, (rule, sql) in enumerate(group.rules):
                    cands = candidates[i]
                    try:
                        if cands is None:
                            rows = conn.execute(sql).fetchall()
                        elif not cands:
                            self.stats.skipped += 1
                            continue
                        else:
                            self.stats.candidate_events += len(cands)
                            rows = conn.execute(
                                group.filtered_sql[i], (json.dumps(sorted(cands)),)
                            ).fetchall()
                        self.stats.evaluations += 1
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
