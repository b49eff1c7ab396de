"""The one ingest service every door uses (CLI, API, connectors, the folder watcher, workers).

parse (JSON object, JSON array or NDJSON) -> clean (``socflow.untrusted.clean_json``) -> normalize ->
validate (``AlertIn``) -> deduplicate -> store -> group. Each alert is committed before anything is done
with it (``on_case_created`` callbacks run after the commit).

Each item stands alone: a bad one (syntax, NaN, a 5,000-digit number, nesting past 32 levels, a timestamp
out of range, an oversize field, a value the database refuses) is reported with its position and reason,
kept as a dead letter (``socflow.deadletters``), and never stops, fails or loses the good ones. NUL
characters are removed and text is made valid UTF-8 rather than refused. A chunk that fails as a whole
(SQLite busy past its timeout, a lost connection) is rolled back entirely and retried a bounded number of
times; its items are reported only once it committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from socflow import deadletters
from socflow.enums import CaseStatus
from socflow.errors import InputError
from socflow.grouping import Grouper, OneCasePerAlert
from socflow.injection import detect as detect_injection
from socflow.observables import extract
from socflow.runqueue import RunQueue
from socflow.schemas import AlertIn, IngestItem, IngestReport
from socflow.store import CaseStore
from socflow.tables import Case
from socflow.untrusted import UnsafeJSON, clean_json, parse_json, split_json_array

log = logging.getLogger(__name__)

CHUNK = 200
IDENTIFIERS = frozenset({"source", "source_ref"})  # NUL in these is refused, not removed
CHUNK_ATTEMPTS = 5  # a chunk whose transaction fails as a whole (SQLite busy, lost connection) is retried


@dataclass(frozen=True)
class Refusal:
    """An item a door refused before ingest (``IngestService.refuse`` keeps it as a dead letter)."""

    index: int | None
    line: int | None
    reason: str
    payload: Any
    field: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Sender:
    """Who hands items in: the door (``api``, ``cli``, ``connector``, ...) and, for an API token, the
    sources it may send (``None``: any). ``trusted_origin``: the door is run by the operator (CLI,
    connectors, the folder watcher), so the source it names is taken as true. An API token is trusted for
    a source only when bound to it; the auto-close policy looks only at alerts from trusted senders."""

    door: str
    sources: frozenset[str] | None = None
    trusted_origin: bool = False

    def bound_to(self, source: str) -> bool:
        if self.sources is None:
            return self.trusted_origin
        return source in self.sources


def sender_for(actor: str) -> Sender:
    """The default sender of a door named by its actor (``api:<token>``, ``cli``, ``connector:folder``)."""
    door = actor.split(":", 1)[0] or "unknown"
    return Sender(door=door[:32], trusted_origin=door != "api")


@dataclass(frozen=True)
class ParsedItem:
    """One submitted item: its 0-based index, its line (NDJSON), and the object or a parse error."""

    index: int
    line: int | None
    data: Any = None
    error: str | None = None
    text: str | None = None  # the unparsed text of an item that could not be parsed (for dead letters)


def parse_payload(text: str) -> Iterator[ParsedItem]:
    """Items from a JSON object, a JSON array, or NDJSON (one object per line; blank lines skipped)."""
    stripped = text.strip()
    if not stripped:
        return
    if stripped[0] in "[{":
        try:
            doc = parse_json(stripped)
        except ValueError:
            parts = split_json_array(stripped)
            if parts is not None:  # an array with a bad element: read the elements one by one
                yield from parse_elements(parts)
                return
        else:
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items):
                yield ParsedItem(index=i, line=None, data=item)
            return
    yield from parse_ndjson(text.splitlines())


def _parse_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    return f"invalid JSON: {exc}"


def parse_elements(parts: Iterable[str]) -> Iterator[ParsedItem]:
    """Items from the element texts of an array (``split_json_array``), each parsed on its own."""
    for i, part in enumerate(parts):
        try:
            yield ParsedItem(index=i, line=None, data=parse_json(part))
        except ValueError as exc:
            yield ParsedItem(index=i, line=None, error=_parse_error(exc), text=part)


def parse_ndjson(lines: Iterable[str], *, start_line: int = 1) -> Iterator[ParsedItem]:
    index = 0
    for line_no, line in enumerate(lines, start=start_line):
        if not line.strip():
            continue
        try:
            yield ParsedItem(index=index, line=line_no, data=parse_json(line))
        except ValueError as exc:
            yield ParsedItem(index=index, line=line_no, error=_parse_error(exc), text=line)
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
    An alert that joins a case marks its drafts stale; the queue supersedes the waiting runs and queues a
    re-assessment unless one is already queued (a stale draft always has a queued re-assessment), and
    starts triggered workflows new to the case.
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

    def ingest_text(
        self,
        text: str,
        *,
        actor: str,
        sender: Sender | None = None,
        normalizer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> IngestReport:
        return self.ingest(parse_payload(text), actor=actor, sender=sender, normalizer=normalizer)

    def ingest(
        self,
        items: Iterable[ParsedItem],
        *,
        actor: str,
        progress: Callable[[int], None] | None = None,
        sender: Sender | None = None,
        normalizer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> IngestReport:
        """``sender`` defaults to the door named by ``actor``; ``normalizer`` overrides the service's
        (a per-token or per-request format)."""
        report = IngestReport()
        who = sender or sender_for(actor)
        chunk: list[ParsedItem] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                self._ingest_chunk(chunk, actor, report, who, normalizer)
                if progress:
                    progress(len(chunk))
                chunk = []
        if chunk:
            self._ingest_chunk(chunk, actor, report, who, normalizer)
            if progress:
                progress(len(chunk))
        return report

    def _ingest_chunk(
        self,
        chunk: list[ParsedItem],
        actor: str,
        report: IngestReport,
        sender: Sender,
        normalizer: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ) -> None:
        prepared = [self._prepare(item, normalizer) for item in chunk]
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            new_cases: list[int] = []
            runs: list[str] = []
            results: list[IngestItem] = []
            try:
                with self.factory() as session, session.begin():
                    store = CaseStore(session)
                    for item, outcome in zip(chunk, prepared, strict=True):
                        result, case_id, run_ids = self._ingest_one(
                            session, store, item, outcome, actor, sender
                        )
                        results.append(result)
                        if result.status == "rejected":
                            deadletters.record(
                                session,
                                door=sender.door,
                                actor=actor,
                                source=_source_of(item),
                                index=item.index,
                                line=item.line,
                                reason=result.reason or "rejected",
                                field=result.field,
                                payload=item.text if item.data is None else item.data,
                            )
                        if case_id is not None:
                            new_cases.append(case_id)
                        runs.extend(run_ids)
            except OperationalError as exc:  # the transaction failed as a whole: nothing of it committed
                if attempt == CHUNK_ATTEMPTS:
                    raise
                log.warning("ingest chunk failed (%s); retry %d", type(exc.orig).__name__, attempt)
                time.sleep(min(0.05 * 2**attempt, 1.0))
                continue
            break
        report.items.extend(results)
        report.runs_queued.extend(runs)
        for case_id in new_cases:
            if self.on_case_created:
                self.on_case_created(case_id)
        for run_id in runs:
            if self.on_run_queued:
                self.on_run_queued(run_id)

    def refuse(self, refusals: Iterable[Refusal], *, actor: str, door: str | None = None) -> int:
        """Keep items a door refused before ingest (unreadable, not an object) as dead letters."""
        rows = list(refusals)
        if not rows:
            return 0
        with self.factory() as session, session.begin():
            for r in rows:
                deadletters.record(
                    session,
                    door=door or sender_for(actor).door,
                    actor=actor,
                    source=r.source,
                    index=r.index,
                    line=r.line,
                    reason=r.reason,
                    field=r.field,
                    payload=r.payload,
                )
        return len(rows)

    # the frozen-case fix (issue 17, defect 6) lives in RunQueue.on_alert_joined
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

    def _prepare(
        self, item: ParsedItem, normalizer: Callable[[dict[str, Any]], dict[str, Any]] | None
    ) -> AlertIn | IngestItem:
        """The validated alert of one item, or its rejection (no database needed, done once per chunk)."""
        base = {"index": item.index, "line": item.line}
        if item.error is not None:
            return IngestItem(status="rejected", reason=item.error, **base)
        if not isinstance(item.data, dict):
            return IngestItem(status="rejected", reason="an alert must be a JSON object", **base)
        try:
            data = clean_json(item.data, keep_top=IDENTIFIERS)
            normalize = normalizer or self.normalizer
            if normalize is not None:
                data = clean_json(normalize(data), keep_top=IDENTIFIERS)
            return AlertIn.model_validate(data)
        except UnsafeJSON as exc:
            return IngestItem(status="rejected", reason=exc.reason, field=exc.path or None, **base)
        except ValidationError as exc:
            field, reason = validation_reason(exc)
            return IngestItem(status="rejected", reason=reason, field=field, **base)
        except InputError as exc:
            return IngestItem(status="rejected", reason=exc.reason, field=exc.field, **base)
        except (ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
            # a vendor mapping met a shape it did not expect: this item is refused, the batch goes on
            log.warning("item %d could not be normalized: %s", item.index, type(exc).__name__)
            reason = f"could not be normalized ({type(exc).__name__})"
            return IngestItem(status="rejected", reason=reason, **base)

    def _ingest_one(
        self,
        session: Session,
        store: CaseStore,
        item: ParsedItem,
        prepared: AlertIn | IngestItem,
        actor: str,
        sender: Sender,
    ) -> tuple[IngestItem, int | None, list[str]]:
        base = {"index": item.index, "line": item.line}
        if isinstance(prepared, IngestItem):
            return prepared, None, []
        alert = prepared
        if sender.sources is not None and alert.source not in sender.sources:
            reason = f"this token may not send alerts of source {alert.source!r}"
            return IngestItem(status="rejected", reason=reason, field="source", **base), None, []
        key = dedup_key(alert)
        existing = store.find_alert(alert.source, key)
        if existing is not None:
            dup = IngestItem(status="duplicate", alert_id=existing.id, case_id=existing.case_id, **base)
            return dup, None, []
        finding = detect_injection(injection_fields(alert))
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
                    sender_bound=sender.bound_to(alert.source),
                    injection=finding,
                )
                if assignment.created:
                    queue = self.queue
                    runs = (
                        queue.on_case_opened(session, assignment.case.id, alert, actor=actor) if queue else []
                    )
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
        except OperationalError:
            raise  # the whole transaction is gone (busy, connection lost): the chunk is retried
        except DBAPIError as exc:  # the database refused this item's values; the savepoint undid it
            log.warning("item %d refused by the database: %s", item.index, type(exc.orig).__name__)
            reason = f"the database refused a value ({type(exc.orig).__name__})"
            return IngestItem(status="rejected", reason=reason, **base), None, []
        new_case = assignment.case.id if assignment.created else None
        return IngestItem(status="accepted", alert_id=row.id, case_id=row.case_id, **base), new_case, runs


def injection_fields(alert: AlertIn) -> dict[str, str]:
    """The free-text fields of an alert the injection detector reads."""
    fields = {"title": alert.title, "description": alert.description or ""}
    if alert.rule.name:
        fields["rule.name"] = alert.rule.name
    return fields


def _source_of(item: ParsedItem) -> str | None:
    if isinstance(item.data, dict) and isinstance(item.data.get("source"), str):
        return str(item.data["source"])[:200]
    return None
