"""The one ingest service every door uses (CLI, API, connectors, the folder watcher, workers).

parse (JSON object, JSON array or NDJSON) -> clean (``socflow.untrusted.clean_json``) -> normalize ->
validate (``AlertIn``) -> deduplicate -> group -> store, a chunk at a time: deduplicated and grouped in memory
(stored alerts and open cases read once per chunk) and written with set-based inserts in one transaction.
Each alert is committed before anything is done with it (``on_case_created`` callbacks run after the
commit).

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
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from socflow import deadletters
from socflow.enums import CaseStatus, Severity
from socflow.errors import InputError
from socflow.grouping import Grouper, KeyGrouper, OneCasePerAlert, lock_grouping
from socflow.injection import InjectionFinding
from socflow.injection import detect as detect_injection
from socflow.observables import extract
from socflow.runqueue import RunQueue
from socflow.schemas import AlertIn, IngestItem, IngestReport
from socflow.store import CaseStore, insert_alerts, insert_cases
from socflow.tables import Alert, Case
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
    An alert that joins a case with a waiting draft and matters (``RunQueue.judge_join``: a new host, user
    or technique, a higher severity, more than N alerts since the assessment) marks its drafts stale; the
    queue supersedes the waiting runs and queues a re-assessment unless one is already queued (a stale
    draft always has a queued re-assessment). Any other joining alert joins silently, its grouping reason
    saying why. Triggered workflows new to the case start either way.

    With the built-in groupers and a queue, each chunk is written in bulk (``_write_bulk``: set-based
    inserts, one transaction); a chunk the database refuses as a set, or a custom grouper, goes item by
    item (``_write_each``), with the same rows and results.
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
        bulk = self.queue is not None and isinstance(self.grouper, KeyGrouper | OneCasePerAlert)
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            try:
                if bulk:
                    try:
                        written = self._write_bulk(chunk, prepared, actor, sender)
                    except OperationalError:
                        raise
                    except DBAPIError as exc:  # a concurrent writer, or a value the database refused
                        log.info(
                            "bulk write of a chunk refused (%s); writing its items one by one",
                            type(exc.orig).__name__,
                        )
                        written = self._write_each(chunk, prepared, actor, sender)
                else:
                    written = self._write_each(chunk, prepared, actor, sender)
            except OperationalError as exc:  # the transaction failed as a whole: nothing of it committed
                if attempt == CHUNK_ATTEMPTS:
                    raise
                log.warning("ingest chunk failed (%s); retry %d", type(exc.orig).__name__, attempt)
                time.sleep(min(0.05 * 2**attempt, 1.0))
                continue
            break
        results, new_cases, runs = written
        report.items.extend(results)
        report.runs_queued.extend(runs)
        for case_id in new_cases:
            if self.on_case_created:
                self.on_case_created(case_id)
        for run_id in runs:
            if self.on_run_queued:
                self.on_run_queued(run_id)

    def _dead_letter(
        self, session: Session, item: ParsedItem, result: IngestItem, actor: str, sender: Sender
    ) -> None:
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

    def _write_each(
        self, chunk: list[ParsedItem], prepared: list[AlertIn | IngestItem], actor: str, sender: Sender
    ) -> tuple[list[IngestItem], list[int], list[str]]:
        """The chunk item by item, each in a savepoint (a value the database refuses costs one item)."""
        new_cases: list[int] = []
        runs: list[str] = []
        results: list[IngestItem] = []
        with self.factory() as session, session.begin():
            store = CaseStore(session)
            for item, outcome in zip(chunk, prepared, strict=True):
                result, case_id, run_ids = self._ingest_one(session, store, item, outcome, actor, sender)
                results.append(result)
                if result.status == "rejected":
                    self._dead_letter(session, item, result, actor, sender)
                if case_id is not None:
                    new_cases.append(case_id)
                runs.extend(run_ids)
        return results, new_cases, runs

    def _write_bulk(
        self, chunk: list[ParsedItem], prepared: list[AlertIn | IngestItem], actor: str, sender: Sender
    ) -> tuple[list[IngestItem], list[int], list[str]]:
        """The chunk with set-based inserts in one transaction: deduplicated and grouped in memory, the
        open cases and the grouping state read once. Same rows, audit events and results as
        ``_write_each``."""
        queue = self.queue
        assert queue is not None
        results: list[IngestItem | None] = [None] * len(chunk)
        todo: list[tuple[int, AlertIn, str]] = []
        for pos, (item, outcome) in enumerate(zip(chunk, prepared, strict=True)):
            if isinstance(outcome, IngestItem):
                results[pos] = outcome
            elif sender.sources is not None and outcome.source not in sender.sources:
                reason = f"this token may not send alerts of source {outcome.source!r}"
                results[pos] = _item(item, "rejected", reason=reason, field="source")
            else:
                todo.append((pos, outcome, dedup_key(outcome)))
        with self.factory() as session, session.begin():
            store = CaseStore(session)
            now = store.clock()
            # -- deduplicate: against stored alerts (one query) and within the chunk -------------------
            stored: dict[tuple[str, str], tuple[int, int | None]] = {}
            if todo:
                keys = sorted({key for _, _, key in todo})
                for row in session.execute(
                    select(Alert.id, Alert.case_id, Alert.source, Alert.dedup_key).where(
                        Alert.dedup_key.in_(keys)
                    )
                ):
                    stored[(row.source, row.dedup_key)] = (row.id, row.case_id)
            first: dict[tuple[str, str], int] = {}
            copies: list[tuple[int, int]] = []  # (position, position of the first copy in the chunk)
            fresh: list[tuple[int, AlertIn, str]] = []
            for pos, alert, key in todo:
                ident = (alert.source, key)
                if ident in stored:
                    alert_id, case_id = stored[ident]
                    results[pos] = _item(chunk[pos], "duplicate", alert_id=alert_id, case_id=case_id)
                elif ident in first:
                    copies.append((pos, first[ident]))
                else:
                    first[ident] = pos
                    fresh.append((pos, alert, key))
            # -- group: the open cases of the chunk's keys, read once ---------------------------------
            grouper = self.grouper
            keyed = grouper if isinstance(grouper, KeyGrouper) else None
            open_cases: dict[str, _OpenCase] = {}
            if keyed is not None and fresh:
                lock_grouping(session)
                gkeys = sorted({keyed.key(alert) for _, alert, _ in fresh})
                for case_row in session.execute(
                    select(
                        Case.id, Case.grouping_key, Case.severity, Case.injection_flag, Case.injection_reason
                    )
                    .where(
                        Case.grouping_key.in_(gkeys),
                        Case.status != CaseStatus.closed.value,
                        Case.created_at >= now - keyed.window,
                    )
                    .order_by(Case.id)
                ):  # the newest open case of each key wins, as in KeyGrouper.assign
                    if case_row.grouping_key is not None:
                        open_cases[case_row.grouping_key] = _OpenCase(
                            case_row.id,
                            case_row.severity,
                            bool(case_row.injection_flag),
                            case_row.injection_reason,
                        )
            queue.preload(session, [c.id for c in open_cases.values() if c.id is not None])
            planned: list[_Planned] = []
            new_rows: list[dict[str, Any]] = []
            opened: dict[str, _OpenCase] = {}
            for pos, alert, key in fresh:
                gkey = keyed.key(alert) if keyed is not None else None
                target = open_cases.get(gkey) if gkey is not None else None
                if target is None and gkey is not None:
                    target = opened.get(gkey)
                if target is None:  # this alert opens a case
                    target = _OpenCase(None, alert.severity.value, False, new_index=len(new_rows))
                    new_rows.append(
                        {
                            "title": alert.title[:500],
                            "status": CaseStatus.new.value,
                            "severity": alert.severity.value,
                            "grouping_key": gkey,
                            "created_at": now,
                            "updated_at": now,
                            "injection_flag": False,
                        }
                    )
                    if gkey is not None:
                        opened[gkey] = target
                    planned.append(_Planned(pos, alert, key, target, created=True, gkey=gkey))
                    continue
                stale = False
                economy = None
                if target.id is not None:  # a case opened before this chunk: its draft may wait
                    judgement = queue.judge_join(session, target.id, alert)
                    stale, economy = judgement.stale, judgement.reason
                planned.append(
                    _Planned(pos, alert, key, target, created=False, gkey=gkey, stale=stale, economy=economy)
                )
            # -- write: cases, alerts, observables, audit events, runs ---------------------------------
            new_ids = insert_cases(session, new_rows, actor=actor)
            for p in planned:
                if p.target.id is None:
                    assert p.target.new_index is not None
                    p.target.id = new_ids[p.target.new_index]
            rows: list[dict[str, Any]] = []
            observables = []
            events: list[dict[str, Any]] = []
            findings = []
            for p in planned:
                assert p.target.id is not None
                if keyed is not None and p.gkey is not None:
                    reason = (
                        keyed.new_reason(p.gkey) if p.created else keyed.joined_reason(p.target.id, p.gkey)
                    )
                else:
                    reason = OneCasePerAlert.REASON
                if p.economy:
                    reason = f"{reason}; {p.economy}"
                finding = detect_injection(injection_fields(p.alert))
                findings.append(finding)
                bound = sender.bound_to(p.alert.source)
                rows.append(_alert_row(p.alert, p.key, p.target.id, now, p.gkey, reason, bound, finding))
                observables.append(extract(p.alert))
                data: dict[str, Any] = {
                    "source": p.alert.source,
                    "dedup_key": p.key,
                    "grouping_reason": reason,
                    "sender_bound": bound,
                }
                if finding is not None:
                    data["injection"] = {"field": finding.field, "pattern": finding.pattern}
                events.append(data)
            alert_ids = insert_alerts(session, rows, observables, events, actor=actor)
            # the cases' severity and injection flag, as add_alert keeps them
            changed: dict[int, _OpenCase] = {}
            for p, alert_id, finding in zip(planned, alert_ids, findings, strict=True):
                case = p.target
                assert case.id is not None
                touched = not p.created and case.new_index is None
                if Severity(p.alert.severity).rank > Severity(case.severity).rank:
                    case.severity = p.alert.severity.value
                    touched = True
                if finding is not None and not case.injection_flag:
                    case.injection_flag = True
                    case.injection_reason = f"alert {alert_id}: {finding.reason}"
                    touched = True
                if touched:
                    changed[case.id] = case
            if changed:
                session.execute(
                    update(Case),
                    [
                        {
                            "id": c.id,
                            "severity": c.severity,
                            "injection_flag": c.injection_flag,
                            "injection_reason": c.injection_reason,
                            "updated_at": now,
                        }
                        for c in changed.values()
                    ],
                )
            opened_runs = queue.open_cases(
                session, [(p.target.id, p.alert) for p in planned if p.created and p.target.id], actor=actor
            )
            runs: list[str] = []
            new_cases: list[int] = []
            for p, alert_id in zip(planned, alert_ids, strict=True):
                assert p.target.id is not None
                results[p.pos] = _item(chunk[p.pos], "accepted", alert_id=alert_id, case_id=p.target.id)
                if p.created:
                    new_cases.append(p.target.id)
                    runs.extend(opened_runs.get(p.target.id, []))
                else:
                    runs.extend(
                        queue.on_alert_joined(
                            session,
                            p.target.id,
                            p.alert,
                            actor=actor,
                            why=f"alert {alert_id} joined",
                            window=self.reassess_window,
                            stale=p.stale,
                        )
                    )
            for pos, original in copies:
                done = results[original]
                assert done is not None
                results[pos] = _item(chunk[pos], "duplicate", alert_id=done.alert_id, case_id=done.case_id)
            final = [r for r in results if r is not None]
            assert len(final) == len(chunk)
            for item, result in zip(chunk, final, strict=True):
                if result.status == "rejected":
                    self._dead_letter(session, item, result, actor, sender)
        return final, new_cases, runs

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
        self,
        session: Session,
        store: CaseStore,
        case: Case,
        alert: AlertIn,
        alert_id: int,
        actor: str,
        *,
        stale: bool = True,
    ) -> list[str]:
        if self.queue is None:
            if case.status == CaseStatus.awaiting_approval.value:
                store.mark_draft_stale(case.id, actor=actor, reason=f"alert {alert_id} joined the case")
            return []
        return self.queue.on_alert_joined(
            session,
            case.id,
            alert,
            actor=actor,
            why=f"alert {alert_id} joined",
            window=self.reassess_window,
            stale=stale,
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
                stale, reason = True, assignment.reason
                if not assignment.created and self.queue is not None:
                    judgement = self.queue.judge_join(session, assignment.case.id, alert)
                    stale = judgement.stale
                    if judgement.reason:
                        reason = f"{reason}; {judgement.reason}"
                row = store.add_alert(
                    alert,
                    dedup_key=key,
                    case_id=assignment.case.id,
                    actor=actor,
                    observables=extract(alert),
                    grouping_key=assignment.grouping_key,
                    grouping_reason=reason,
                    sender_bound=sender.bound_to(alert.source),
                    injection=finding,
                )
                if assignment.created:
                    queue = self.queue
                    runs = (
                        queue.on_case_opened(session, assignment.case.id, alert, actor=actor) if queue else []
                    )
                else:
                    runs = self._after_join(
                        session, store, assignment.case, alert, row.id, actor, stale=stale
                    )
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


def _item(item: ParsedItem, status: str, **fields: Any) -> IngestItem:
    return IngestItem(status=status, index=item.index, line=item.line, **fields)


@dataclass
class _OpenCase:
    """A case alerts of the chunk go to: read once (``id`` set) or opened by the chunk (``new_index``)."""

    id: int | None
    severity: str
    injection_flag: bool
    injection_reason: str | None = None
    new_index: int | None = None


@dataclass
class _Planned:
    pos: int
    alert: AlertIn
    key: str
    target: _OpenCase
    created: bool
    gkey: str | None
    stale: bool = False
    economy: str | None = None


def _alert_row(
    alert: AlertIn,
    key: str,
    case_id: int,
    now: datetime,
    gkey: str | None,
    reason: str,
    bound: bool,
    finding: InjectionFinding | None,
) -> dict[str, Any]:
    """The ``alerts`` columns ``CaseStore.add_alert`` writes."""
    return {
        "sender_bound": bound,
        "injection_flag": finding is not None,
        "injection_reason": finding.reason if finding else None,
        "source": alert.source,
        "source_ref": alert.source_ref,
        "dedup_key": key,
        "received_at": now,
        "observed_at": alert.timestamp,
        "title": alert.title,
        "description": alert.description,
        "severity": alert.severity.value,
        "rule_id": alert.rule.id,
        "rule_name": alert.rule.name,
        "rule_tags": list(alert.rule.tags),
        "entities": alert.entities.model_dump(),
        "raw": alert.raw,
        "case_id": case_id,
        "grouping_key": gkey,
        "grouping_reason": reason,
    }
