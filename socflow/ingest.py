"""The one ingest service every door uses (CLI, API, connectors, workers).

parse (JSON object, JSON array or NDJSON) -> validate (``AlertIn``) -> deduplicate -> store -> group.
Each alert is committed before anything is done with it (``on_case_created`` callbacks run after the
commit); a bad item is reported with its position and reason and never stops the good ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from socflow.enums import CaseStatus
from socflow.errors import InputError
from socflow.grouping import Grouper, OneCasePerAlert
from socflow.observables import extract
from socflow.runqueue import RunQueue
from socflow.schemas import AlertIn, IngestItem, IngestReport
from socflow.store import CaseStore
from socflow.tables import Case

CHUNK = 200


@dataclass(frozen=True)
class ParsedItem:
    """One submitted item: its 0-based index, its line (NDJSON), and the object or a parse error."""

    index: int
    line: int | None
    data: Any = None
    error: str | None = None


def parse_payload(text: str) -> Iterator[ParsedItem]:
    """Items from a JSON object, a JSON array, or NDJSON (one object per line; blank lines skipped)."""
    stripped = text.strip()
    if not stripped:
        return
    if stripped[0] in "[{":
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError:
            doc = None
        else:
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items):
                yield ParsedItem(index=i, line=None, data=item)
            return
    yield from parse_ndjson(text.splitlines())


def parse_ndjson(lines: Iterable[str], *, start_line: int = 1) -> Iterator[ParsedItem]:
    index = 0
    for line_no, line in enumerate(lines, start=start_line):
        if not line.strip():
            continue
        try:
            yield ParsedItem(index=index, line=line_no, data=json.loads(line))
        except json.JSONDecodeError as exc:
            yield ParsedItem(
                index=index, line=line_no, error=f"invalid JSON: {exc.msg} at column {exc.colno}"
            )
        index += 1


def dedup_key(alert: AlertIn) -> str:
    """``source_ref`` when given, else ``fp:`` + sha256 of the canonical normalized alert."""
    if alert.source_ref:
        return alert.source_ref
    canonical = json.dumps(
        alert.model_dump(mode="json", exclude={"source_ref"}), sort_keys=True, separators=(",", ":")
    )
    return "fp:" + hashlib.sha256(canonical.encode()).hexdigest()


def validation_reason(exc: ValidationError) -> tuple[str | None, str]:
    err = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return field, err["msg"]


class IngestService:
    """Ingest alerts; ``queue`` starts the workflows whose triggers match (``socflow.runqueue``), in the
    transaction that stores the alert and its case.

    ``on_case_created`` and ``on_run_queued`` run after the commit (e.g. to hand runs to a dispatcher).
    An alert that joins a case marks its drafts stale; the queue supersedes the waiting runs, queues at
    most one re-assessment per workflow and case per window, and starts triggered workflows new to the case.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        grouper: Grouper | None = None,
        queue: RunQueue | None = None,
        on_case_created: Callable[[int], None] | None = None,
        on_run_queued: Callable[[str], None] | None = None,
        normalizer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        reassess_window: timedelta = timedelta(hours=1),
    ) -> None:
        self.factory = factory
        self.grouper = grouper or OneCasePerAlert()
        self.queue = queue
        self.on_case_created = on_case_created
        self.on_run_queued = on_run_queued
        self.normalizer = normalizer
        self.reassess_window = reassess_window

    def ingest_text(self, text: str, *, actor: str) -> IngestReport:
        return self.ingest(parse_payload(text), actor=actor)

    def ingest(
        self,
        items: Iterable[ParsedItem],
        *,
        actor: str,
        progress: Callable[[int], None] | None = None,
    ) -> IngestReport:
        report = IngestReport()
        chunk: list[ParsedItem] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                self._ingest_chunk(chunk, actor, report)
                if progress:
                    progress(len(chunk))
                chunk = []
        if chunk:
            self._ingest_chunk(chunk, actor, report)
            if progress:
                progress(len(chunk))
        return report

    def _ingest_chunk(self, chunk: list[ParsedItem], actor: str, report: IngestReport) -> None:
        new_cases: list[int] = []
        runs: list[str] = []
        with self.factory() as session, session.begin():
            store = CaseStore(session)
            for item in chunk:
                result, case_id, run_ids = self._ingest_one(session, store, item, actor)
                report.items.append(result)
                if case_id is not None:
                    new_cases.append(case_id)
                runs.extend(run_ids)
        report.runs_queued.extend(runs)
        for case_id in new_cases:
            if self.on_case_created:
                self.on_case_created(case_id)
        for run_id in runs:
            if self.on_run_queued:
                self.on_run_queued(run_id)

    def _after_join(
        self, session: Session, store: CaseStore, case: Case, alert: AlertIn, alert_id: int, actor: str
    ) -> list[str]:
        if self.queue is None:
            if case.status == CaseStatus.awaiting_approval.value:
                store.mark_draft_stale(case.id, actor=actor, reason=f"alert {alert_id} joined the case")
            return []
        return self.queue.on_alert_joined(
            session, case.id, alert, actor=actor, why=f"alert {alert_id} joined", window=self.reassess_window
        )

    def _ingest_one(
        self, session: Session, store: CaseStore, item: ParsedItem, actor: str
    ) -> tuple[IngestItem, int | None, list[str]]:
        base = {"index": item.index, "line": item.line}
        if item.error is not None:
            return IngestItem(status="rejected", reason=item.error, **base), None, []
        if not isinstance(item.data, dict):
            return IngestItem(status="rejected", reason="an alert must be a JSON object", **base), None, []
        try:
            data = self.normalizer(item.data) if self.normalizer else item.data
            alert = AlertIn.model_validate(data)
        except ValidationError as exc:
            field, reason = validation_reason(exc)
            return IngestItem(status="rejected", reason=reason, field=field, **base), None, []
        except InputError as exc:
            return IngestItem(status="rejected", reason=exc.reason, field=exc.field, **base), None, []
        key = dedup_key(alert)
        existing = store.find_alert(alert.source, key)
        if existing is not None:
            dup = IngestItem(status="duplicate", alert_id=existing.id, case_id=existing.case_id, **base)
            return dup, None, []
        try:
            with session.begin_nested():
                assignment = self.grouper.assign(store, alert, actor=actor)
                row = store.add_alert(
                    alert,
                    dedup_key=key,
                    case_id=assignment.case.id,
                    actor=actor,
                    observables=extract(alert),
                    grouping_key=assignment.grouping_key,
                    grouping_reason=assignment.reason,
                )
                if assignment.created:
                    queue, opened = self.queue, assignment.case.id
                    runs = queue.on_case_opened(session, opened, alert, actor=actor) if queue else []
                else:
                    runs = self._after_join(session, store, assignment.case, alert, row.id, actor)
        except IntegrityError:  # a concurrent writer stored the same alert first
            existing = store.find_alert(alert.source, key)
            return (
                IngestItem(
                    status="duplicate",
                    alert_id=existing.id if existing else None,
                    case_id=existing.case_id if existing else None,
                    **base,
                ),
                None,
                [],
            )
        new_case = assignment.case.id if assignment.created else None
        return IngestItem(status="accepted", alert_id=row.id, case_id=row.case_id, **base), new_case, runs
