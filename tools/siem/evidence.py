"""The SIEM as an evidence provider (``socflow.evidence.EvidenceProvider``): events of the case's hosts and
users inside its time window, each an ``EvidenceRecord`` whose id is a hash of case, backend and event id."""

from __future__ import annotations

from socflow.errors import SiemError, TransientError
from socflow.evidence import CaseContext
from socflow.schemas import EvidenceRecord
from tools.siem.backend import SiemBackend
from tools.siem.models import EntityQuery

PER_QUERY = 10


class SiemEvidenceProvider:
    """One ``EntityQuery`` per host and per user of the case; a failing query is skipped, not fatal."""

    name = "siem"

    def __init__(self, siem: SiemBackend, *, per_query: int = PER_QUERY) -> None:
        self.siem = siem
        self.per_query = per_query

    def queries(self, context: CaseContext) -> list[EntityQuery]:
        window = {"since": context.since, "until": context.until, "limit": self.per_query}
        return [EntityQuery(host=h, **window) for h in context.hosts] + [
            EntityQuery(user=u, **window) for u in context.users
        ]

    def evidence(self, context: CaseContext, *, limit: int) -> list[EvidenceRecord]:
        records: dict[str, EvidenceRecord] = {}
        for query in self.queries(context):
            try:
                events = self.siem.search(query)
            except SiemError as exc:
                if isinstance(exc, TransientError):
                    raise  # the SIEM is down or busy: the runner retries the node
                continue  # a failing lookup leaves less evidence, never a failed triage
            for event in events:
                payload = event.to_evidence(str(context.case_id))
                payload.pop("case_id", None)
                record = EvidenceRecord.model_validate(payload)
                records.setdefault(record.evidence_id, record)
                if len(records) >= limit:
                    return list(records.values())
        return list(records.values())
