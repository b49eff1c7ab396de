"""Threat-intel matches as evidence: the case's observables looked up in the indicator store (and MISP).

:class:`IntelEvidence` is an evidence provider (``socflow.evidence``), registered by the composition after
the SIEM providers. It reads the case's stored observables of the indicator types (IPs, domains, URLs,
hashes, e-mails; at most ``MAX_LOOKUPS``, IPs first) plus the context's IPs, matches them against table
``indicators`` and, when configured, the MISP provider (at most ``MAX_REMOTE_LOOKUPS`` values per case),
and returns one :class:`~socflow.schemas.EvidenceRecord` of kind ``threat_intel`` per matched value: its
id is a hash of (case, ``threat_intel``, type, value), so a re-run cites the same id. The summary names
the value, the sources and the highest confidence; feed text in it is cut short (it is untrusted data and
reaches the model only inside the evidence fence). ``data.max_confidence`` is what the policy's
``intel_match`` rules read.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import SocflowError
from socflow.evidence import CaseContext
from socflow.schemas import EvidenceRecord
from socflow.tables import Observable
from tools.intel import store
from tools.intel.indicators import IndicatorType, normalize
from tools.intel.misp import MispProvider

log = logging.getLogger(__name__)

EVIDENCE_KIND = "threat_intel"
MAX_LOOKUPS = 100
MAX_REMOTE_LOOKUPS = 20
MAX_SOURCES_SHOWN = 5
_ORDER = [IndicatorType.ip, IndicatorType.domain, IndicatorType.hash, IndicatorType.url, IndicatorType.email]


def evidence_id(case_id: int, kind: str, value: str) -> str:
    return hashlib.sha256(f"{case_id}\x1f{EVIDENCE_KIND}\x1f{kind}\x1f{value}".encode()).hexdigest()[:32]


@dataclass
class Match:
    """One indicator that matched: where it comes from and what the feed says about it."""

    source: str
    confidence: int | None
    description: str | None
    tags: list[str]
    external_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "confidence": self.confidence,
            "description": self.description,
            "tags": self.tags[:10],
            "external_id": self.external_id,
        }


@dataclass
class IntelEvidence:
    """Matches of a case's observables in the indicator store and (optionally) MISP."""

    factory: sessionmaker[Session]
    misp: MispProvider | None = None
    name: str = "threat-intel"
    remote_lookups: int = field(default=MAX_REMOTE_LOOKUPS)

    def _pairs(self, session: Session, context: CaseContext) -> list[tuple[IndicatorType, str]]:
        types = [t.value for t in IndicatorType]
        rows = session.execute(
            select(Observable.type, Observable.value)
            .where(Observable.case_id == context.case_id, Observable.type.in_(types))
            .distinct()
            .limit(MAX_LOOKUPS * 5)
        ).all()
        found: set[tuple[IndicatorType, str]] = set()
        for kind, value in [*rows, *((IndicatorType.ip.value, ip) for ip in context.ips)]:
            try:
                found.add((IndicatorType(kind), normalize(kind, value)))
            except ValueError:
                continue
        return sorted(found, key=lambda p: (_ORDER.index(p[0]), p[1]))[:MAX_LOOKUPS]

    def evidence(self, context: CaseContext, *, limit: int = 30) -> list[EvidenceRecord]:
        with self.factory() as session:
            pairs = self._pairs(session, context)
            if not pairs:
                return []
            matches: dict[tuple[IndicatorType, str], list[Match]] = defaultdict(list)
            for row in store.match(session, pairs):
                key = (IndicatorType(row.type), row.value)
                matches[key].append(
                    Match(row.source, row.confidence, row.description, list(row.tags or []), row.external_id)
                )
        if self.misp is not None:
            self._remote(pairs, matches)
        records = [self._item(context.case_id, k, v) for k, v in matches.items()]
        records.sort(key=lambda r: (-(r.data["max_confidence"] or 0), r.data["type"], r.data["value"]))
        return records[: max(0, limit)]

    def _remote(
        self, pairs: list[tuple[IndicatorType, str]], matches: dict[tuple[IndicatorType, str], list[Match]]
    ) -> None:
        assert self.misp is not None
        for kind, value in pairs[: self.remote_lookups]:
            try:
                found = self.misp.lookup(kind, value)
            except SocflowError as exc:  # down, refused, over its rate limit: the local matches stand
                log.warning("misp lookup of a %s failed: %s", kind, exc)
                continue
            for item in found:
                matches[(kind, value)].append(
                    Match(item.source, item.confidence, item.description, item.tags, item.external_id)
                )

    def _item(self, case_id: int, key: tuple[IndicatorType, str], found: list[Match]) -> EvidenceRecord:
        kind, value = key
        found = sorted(found, key=lambda m: (-(m.confidence or 0), m.source))
        confidences = [m.confidence for m in found if m.confidence is not None]
        best = max(confidences) if confidences else None
        sources = sorted({m.source for m in found})
        shown = ", ".join(s[:60] for s in sources[:MAX_SOURCES_SHOWN])
        more = f" and {len(sources) - MAX_SOURCES_SHOWN} more" if len(sources) > MAX_SOURCES_SHOWN else ""
        about = next((m.description for m in found if m.description), None)
        summary = (
            f"Threat intel: the {kind} {value[:300]} is a known indicator in {shown}{more}"
            f" (confidence {best if best is not None else 'unknown'})" + (f": {about[:200]}" if about else "")
        )
        return EvidenceRecord(
            evidence_id=evidence_id(case_id, kind.value, value),
            kind=EVIDENCE_KIND,
            backend="misp" if sources == ["misp"] else "intel",
            source_event_id=(found[0].external_id or "")[:200] or None,
            summary=summary,
            data={
                "type": kind.value,
                "value": value,
                "sources": sources[:20],
                "max_confidence": best,
                "matches": [m.as_json() for m in found[:20]],
            },
        )
