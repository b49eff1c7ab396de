"""The evidence-provider seam: what ``gather_evidence`` steps call to collect evidence about a case.

A provider is given the case context (``CaseContext``: case id, hosts, users, IPs, the time window) and
returns ``EvidenceRecord``s with stable ids (the same event always gets the same id for the same case, so a
re-run stores nothing twice). The SIEM lookup is the first provider (``tools.siem.evidence``); related
detections and threat intelligence plug in the same way, listed once in the composition
(``Services.deps.evidence``). Workflows call ``collect_evidence`` and never a provider directly.

A provider that fails with a ``SocflowError`` (its backend is down, it refused the query) is logged and
skipped: less evidence, never a failed run. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from socflow.errors import SocflowError
from socflow.schemas import EvidenceRecord
from socflow.tables import Alert

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=1)
MAX_ENTITIES = 10  # per kind: a storm case does not turn into hundreds of lookups
DEFAULT_LIMIT = 30


@dataclass(frozen=True)
class CaseContext:
    """What a provider may look up: the case's entities and the time window around its alerts."""

    case_id: int
    hosts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


class EvidenceProvider(Protocol):
    """Looks up evidence about a case. ``name`` shows in logs; ids must be stable per case and event."""

    name: str

    def evidence(self, context: CaseContext, *, limit: int) -> list[EvidenceRecord]: ...


def _first(values: Iterable[object], n: int) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for v in values:
        if isinstance(v, str) and v:
            out.setdefault(v, None)
            if len(out) >= n:
                break
    return tuple(out)


def case_context(
    case_id: int,
    alerts: Sequence[Alert],
    *,
    window: timedelta = DEFAULT_WINDOW,
    max_entities: int = MAX_ENTITIES,
) -> CaseContext:
    """The context of a case from its alerts: their entities (first ``max_entities`` of each kind, in alert
    order) and their observed times widened by ``window`` on both sides."""
    times = [a.observed_at for a in alerts if a.observed_at is not None]

    def entities(kind: str) -> tuple[str, ...]:
        return _first((v for a in alerts for v in (a.entities or {}).get(kind, []) or []), max_entities)

    return CaseContext(
        case_id=case_id,
        hosts=entities("hosts"),
        users=entities("users"),
        ips=entities("ips"),
        since=min(times) - window if times else None,
        until=max(times) + window if times else None,
    )


def collect_evidence(
    providers: Sequence[EvidenceProvider], context: CaseContext, *, limit: int = DEFAULT_LIMIT
) -> list[EvidenceRecord]:
    """Evidence from every provider in order, de-duplicated by evidence id, at most ``limit`` items."""
    records: dict[str, EvidenceRecord] = {}
    for provider in providers:
        room = limit - len(records)
        if room <= 0:
            break
        try:
            found = provider.evidence(context, limit=room)
        except SocflowError as exc:
            log.warning("evidence provider %s failed for case %s: %s", provider.name, context.case_id, exc)
            continue
        for record in found:
            records.setdefault(record.evidence_id, record)
            if len(records) >= limit:
                break
    return list(records.values())
