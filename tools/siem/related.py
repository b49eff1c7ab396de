"""Related detections as evidence: what the rule pack raised on a case's hosts and users within its window.

:class:`RelatedDetections` is an evidence provider (``socflow.evidence``: given the case context, return
evidence items with stable ids), registered by the composition when the SIEM is the embedded store. It
reads the store's ``detections`` table (written by streaming detection) joined to the events, and returns
one :class:`~socflow.schemas.EvidenceRecord` per rule and host: its id is a hash of (case,
``sigma-detection``, rule, host), so a re-run cites the same ids. Suppressed detections are left out.
Field values are attacker-controlled: the summary is bounded, and the data keeps only ids and counts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from socflow.evidence import CaseContext
from socflow.schemas import EvidenceRecord
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import stable_id
from tools.siem.normalize import iso_utc, parse_timestamp
from tools.siem.stream import SUPPRESSED, DetectionState

EVIDENCE_KIND = "sigma_detection"
MAX_ITEMS = 50
MAX_EVENT_IDS = 20
MAX_ENTITIES = 50


@dataclass
class RuleInfo:
    title: str
    level: str = ""
    tags: tuple[str, ...] = ()


@dataclass
class RelatedDetections:
    """Pack detections on the case's hosts or users within the window, one item per rule and host."""

    siem: EmbeddedSiem | Path  # a path: the store is opened per lookup (thread-safe in a server)
    rules: Mapping[str, RuleInfo] = field(default_factory=dict)
    name: str = "sigma-detections"

    def evidence(self, context: CaseContext, *, limit: int = MAX_ITEMS) -> list[EvidenceRecord]:
        if isinstance(self.siem, EmbeddedSiem):
            return self._lookup(self.siem, context, limit)
        if not Path(self.siem).exists():
            return []
        with EmbeddedSiem(self.siem) as siem:
            return self._lookup(siem, context, limit)

    def _lookup(self, siem: EmbeddedSiem, context: CaseContext, limit: int) -> list[EvidenceRecord]:
        hosts = sorted({h.lower() for h in context.hosts if h})[:MAX_ENTITIES]
        users = sorted({u.rsplit("\\", 1)[-1].lower() for u in context.users if u})[:MAX_ENTITIES]
        if not hosts and not users:
            return []
        DetectionState(siem)  # creates the tables on a store that never ran detection
        clauses, params = [], []
        if hosts:
            clauses.append(f'e."host.name" IN ({", ".join("?" * len(hosts))})')
            params.extend(hosts)
        if users:
            clauses.append(f'e."user.name" IN ({", ".join("?" * len(users))})')
            params.extend(users)
        where = [f"({' OR '.join(clauses)})", "d.status <> ?"]
        params.append(SUPPRESSED)
        if context.since is not None:
            where.append('e."@timestamp" >= ?')
            params.append(iso_utc(context.since))
        if context.until is not None:
            where.append('e."@timestamp" <= ?')
            params.append(iso_utc(context.until))
        sql = (
            'SELECT d.rule_id, lower(coalesce(e."host.name", \'\')), count(*), min(e."@timestamp"), '
            'max(e."@timestamp"), group_concat(e.event_id) '
            "FROM detections d JOIN events e ON e.rowid = d.event_rowid "
            f'WHERE {" AND ".join(where)} GROUP BY d.rule_id, 2 ORDER BY min(e."@timestamp"), d.rule_id '
            f"LIMIT {max(0, min(MAX_ITEMS, limit))}"
        )
        try:
            rows = siem.connection.execute(sql, params).fetchall()
        except sqlite3.Error:
            return []
        return [self._item(str(context.case_id), *row) for row in rows]

    def _item(
        self, case_id: str, rule_id: str, host: str, count: int, first: str | None, last: str | None, ids: str
    ) -> EvidenceRecord:
        info = self.rules.get(rule_id) or RuleInfo(title=rule_id)
        event_ids = sorted((ids or "").split(","))[:MAX_EVENT_IDS]
        summary = (
            f"Sigma rule '{info.title[:200]}' ({info.level or 'unknown level'}) matched {count} event(s)"
            f" on host {host[:100] or 'unknown'} between {first or '?'} and {last or '?'}"
        )
        return EvidenceRecord(
            evidence_id=stable_id(str(case_id), EVIDENCE_KIND, rule_id, host),
            kind=EVIDENCE_KIND,
            backend="embedded",
            source_event_id=rule_id[:200],
            observed_at=parse_timestamp(first),
            summary=summary,
            data={
                "rule_id": rule_id,
                "rule_title": info.title[:300],
                "level": info.level,
                "tags": list(info.tags)[:20],
                "host": host[:200],
                "events": count,
                "event_ids": event_ids,
                "first_seen": first,
                "last_seen": last,
            },
        )
