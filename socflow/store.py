"""The case store: the only writer of case, alert, observable, note and audit rows.

Every public mutating method is marked with ``@mutation(action)`` and appends exactly one audit event in
the caller's transaction (the wrapper checks it at run time). Methods without the mark only read; their
names start with ``get_``, ``list_``, ``find_`` or ``count_`` (the audit test enforces both rules).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from socflow.enums import (
    CASE_TRANSITIONS,
    DEFAULT_NOTE_KIND,
    AuthorKind,
    CaseStatus,
    NoteStatus,
    ObservableType,
    Severity,
    Verdict,
)
from socflow.errors import ConflictError, InvalidTransition, NotFoundError
from socflow.injection import InjectionFinding
from socflow.schemas import AlertIn, EvidenceRecord, TechniqueRecord, now_utc
from socflow.tables import (
    Alert,
    ApiToken,
    AuditEvent,
    Case,
    CaseTechnique,
    Evidence,
    Note,
    NoteRevision,
    Observable,
    RunStep,
)

P = ParamSpec("P")
R = TypeVar("R")
_CaseRow = TypeVar("_CaseRow", Evidence, CaseTechnique)  # rows added to a case by key (_add_new)

READ_PREFIXES = ("get_", "list_", "find_", "count_")


def mutation(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a store method as mutating; the wrapper asserts it appended one audit event.

    Idempotent mutations (``add_evidence``, ``add_techniques``) append none when nothing changed, so a
    re-run after a crash duplicates neither rows nor audit events.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            store = args[0]
            assert isinstance(store, CaseStore)
            before = store._audit_count
            result = fn(*args, **kwargs)
            if store._audit_count - before not in (0, 1):
                raise AssertionError(f"{fn.__name__} appended {store._audit_count - before} audit events")
            return result

        wrapper.__socflow_mutation__ = action  # type: ignore[attr-defined]
        return wrapper

    return decorate


def unified_diff(before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), "draft", "edited"
        )
    )


class CaseStore:
    """Reads and writes within one SQLAlchemy session; the caller owns the transaction."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = now_utc) -> None:
        self.session = session
        self.clock = clock
        self._audit_count = 0

    # -- audit -------------------------------------------------------------------------------------
    def _audit(
        self,
        action: str,
        *,
        actor: str,
        entity_type: str,
        entity_id: Any,
        case_id: int | None,
        data: dict[str, Any] | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            at=self.clock(),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            case_id=case_id,
            data=data or {},
        )
        self.session.add(event)
        self._audit_count += 1
        return event

    # -- reads -------------------------------------------------------------------------------------
    def get_case(self, case_id: int) -> Case:
        case = self.session.get(Case, case_id)
        if case is None:
            raise NotFoundError(f"case {case_id} does not exist")
        return case

    def list_cases(
        self,
        *,
        status: CaseStatus | str | None = None,
        severity: Severity | str | None = None,
        verdict: str | None = None,
        assignee: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Case]:
        stmt = select(Case)
        for column, value in (
            (Case.status, status),
            (Case.severity, severity),
            (Case.verdict, verdict),
            (Case.assignee, assignee),
        ):
            if value is not None:
                stmt = stmt.where(column == str(value))
        stmt = stmt.order_by(Case.id).limit(limit).offset(offset)
        return list(self.session.scalars(stmt))

    def count_cases(self, *, status: CaseStatus | str | None = None) -> int:
        stmt = select(func.count(Case.id))
        if status is not None:
            stmt = stmt.where(Case.status == str(status))
        return int(self.session.scalar(stmt) or 0)

    def count_alerts(self, *, case_id: int | None = None) -> int:
        stmt = select(func.count(Alert.id))
        if case_id is not None:
            stmt = stmt.where(Alert.case_id == case_id)
        return int(self.session.scalar(stmt) or 0)

    def get_alert(self, alert_id: int) -> Alert:
        alert = self.session.get(Alert, alert_id)
        if alert is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        return alert

    def find_alert(self, source: str, dedup_key: str) -> Alert | None:
        return self.session.scalar(select(Alert).where(Alert.source == source, Alert.dedup_key == dedup_key))

    def list_alerts(self, *, case_id: int | None = None, limit: int = 1000, offset: int = 0) -> list[Alert]:
        stmt = select(Alert)
        if case_id is not None:
            stmt = stmt.where(Alert.case_id == case_id)
        return list(self.session.scalars(stmt.order_by(Alert.id).limit(limit).offset(offset)))

    def list_observables(self, *, case_id: int) -> list[Observable]:
        stmt = (
            select(Observable)
            .where(Observable.case_id == case_id)
            .order_by(Observable.type, Observable.value)
        )
        return list(self.session.scalars(stmt))

    def find_open_case(self, grouping_key: str, *, since: datetime) -> Case | None:
        stmt = (
            select(Case)
            .where(
                Case.grouping_key == grouping_key,
                Case.status != CaseStatus.closed.value,
                Case.created_at >= since,
            )
            .order_by(Case.id.desc())
            .limit(1)
        )
        return self.session.scalar(stmt)

    def get_note(self, case_id: int, *, kind: str = DEFAULT_NOTE_KIND) -> Note | None:
        stmt = (
            select(Note).where(Note.case_id == case_id, Note.kind == kind).order_by(Note.id.desc()).limit(1)
        )
        return self.session.scalar(stmt)

    def list_revisions(self, note_id: int) -> list[NoteRevision]:
        stmt = select(NoteRevision).where(NoteRevision.note_id == note_id).order_by(NoteRevision.revision)
        return list(self.session.scalars(stmt))

    def get_current_revision(self, note: Note) -> NoteRevision:
        rev = self.session.scalar(
            select(NoteRevision).where(
                NoteRevision.note_id == note.id, NoteRevision.revision == note.current_revision
            )
        )
        if rev is None:
            raise NotFoundError(f"note {note.id} has no revision {note.current_revision}")
        return rev

    def list_evidence(self, case_id: int) -> list[Evidence]:
        stmt = select(Evidence).where(Evidence.case_id == case_id).order_by(Evidence.observed_at, Evidence.id)
        return list(self.session.scalars(stmt))

    def list_techniques(self, case_id: int) -> list[CaseTechnique]:
        stmt = select(CaseTechnique).where(CaseTechnique.case_id == case_id).order_by(CaseTechnique.id)
        return list(self.session.scalars(stmt))

    def list_draft_notes(self, case_id: int) -> list[Note]:
        """The case's notes of every kind whose current revision is a draft."""
        stmt = select(Note).where(Note.case_id == case_id, Note.status == NoteStatus.draft.value)
        return list(self.session.scalars(stmt.order_by(Note.id)))

    def list_audit(self, *, case_id: int | None = None, action: str | None = None) -> list[AuditEvent]:
        stmt = select(AuditEvent)
        if case_id is not None:
            stmt = stmt.where(AuditEvent.case_id == case_id)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        return list(self.session.scalars(stmt.order_by(AuditEvent.id)))

    # -- mutations ---------------------------------------------------------------------------------
    @mutation("case.created")
    def create_case(
        self, *, title: str, severity: Severity | str, actor: str, grouping_key: str | None = None
    ) -> Case:
        now = self.clock()
        case = Case(
            title=title[:500],
            status=CaseStatus.new.value,
            severity=Severity(severity).value,
            grouping_key=grouping_key,
            created_at=now,
            updated_at=now,
        )
        self.session.add(case)
        self.session.flush()
        self._audit(
            "case.created",
            actor=actor,
            entity_type="case",
            entity_id=case.id,
            case_id=case.id,
            data={"severity": case.severity, "grouping_key": grouping_key},
        )
        return case

    @mutation("alert.ingested")
    def add_alert(
        self,
        alert: AlertIn,
        *,
        dedup_key: str,
        case_id: int,
        actor: str,
        observables: Iterable[tuple[ObservableType, str]] = (),
        grouping_key: str | None = None,
        grouping_reason: str | None = None,
        sender_bound: bool = False,
        injection: InjectionFinding | None = None,
    ) -> Alert:
        row = Alert(
            sender_bound=sender_bound,
            injection_flag=injection is not None,
            injection_reason=injection.reason if injection else None,
            source=alert.source,
            source_ref=alert.source_ref,
            dedup_key=dedup_key,
            received_at=self.clock(),
            observed_at=alert.timestamp,
            title=alert.title,
            description=alert.description,
            severity=alert.severity.value,
            rule_id=alert.rule.id,
            rule_name=alert.rule.name,
            rule_tags=list(alert.rule.tags),
            entities=alert.entities.model_dump(),
            raw=alert.raw,
            case_id=case_id,
            grouping_key=grouping_key,
            grouping_reason=grouping_reason,
        )
        self.session.add(row)
        self.session.flush()
        self.session.add_all(
            Observable(alert_id=row.id, case_id=case_id, type=kind.value, value=value[:2048])
            for kind, value in observables
        )
        case = self.get_case(case_id)
        if Severity(alert.severity).rank > Severity(case.severity).rank:
            case.severity = alert.severity.value
        if injection is not None and not case.injection_flag:
            case.injection_flag = True
            case.injection_reason = f"alert {row.id}: {injection.reason}"
        case.updated_at = self.clock()
        data: dict[str, Any] = {
            "source": alert.source,
            "dedup_key": dedup_key,
            "grouping_reason": grouping_reason,
            "sender_bound": sender_bound,
        }
        if injection is not None:
            data["injection"] = {"field": injection.field, "pattern": injection.pattern}
        self._audit(
            "alert.ingested", actor=actor, entity_type="alert", entity_id=row.id, case_id=case_id, data=data
        )
        return row

    @mutation("case.status_changed")
    def move_case(
        self, case_id: int, status: CaseStatus | str, *, actor: str, reason: str | None = None
    ) -> Case:
        case = self.get_case(case_id)
        target = CaseStatus(status)
        current = CaseStatus(case.status)
        if target not in CASE_TRANSITIONS[current]:
            raise InvalidTransition(f"case {case_id} cannot move from {current} to {target}")
        now = self.clock()
        case.status = target.value
        case.updated_at = now
        if target is CaseStatus.awaiting_approval and case.triaged_at is None:
            case.triaged_at = now
        if target in (CaseStatus.closed, CaseStatus.escalated) and current is CaseStatus.awaiting_approval:
            case.approved_at = now
        if target is CaseStatus.closed:
            case.closed_at = now
        self._audit(
            "case.status_changed",
            actor=actor,
            entity_type="case",
            entity_id=case.id,
            case_id=case.id,
            data={"from": current.value, "to": target.value, "reason": reason},
        )
        return case

    @mutation("case.updated")
    def update_case(
        self,
        case_id: int,
        *,
        actor: str,
        assignee: str | None = None,
        severity: Severity | str | None = None,
        title: str | None = None,
    ) -> Case:
        case = self.get_case(case_id)
        changes: dict[str, Any] = {}
        if assignee is not None:
            changes["assignee"] = [case.assignee, assignee or None]
            case.assignee = assignee or None
        if severity is not None:
            changes["severity"] = [case.severity, Severity(severity).value]
            case.severity = Severity(severity).value
        if title is not None:
            changes["title"] = [case.title, title[:500]]
            case.title = title[:500]
        case.updated_at = self.clock()
        self._audit(
            "case.updated", actor=actor, entity_type="case", entity_id=case.id, case_id=case.id, data=changes
        )
        return case

    @mutation("case.assessed")
    def set_assessment(
        self,
        case_id: int,
        *,
        verdict: str,
        confidence: float | None,
        priority: str | None,
        actor: str,
        rationale: str | None = None,
        calibration: str | None = None,
    ) -> Case:
        """The verdict, confidence and priority; ``calibration`` says whether the confidence is calibrated
        (kept in the ``case.assessed`` audit event, shown beside the confidence)."""
        case = self.get_case(case_id)
        case.verdict = verdict
        case.confidence = confidence
        case.priority = priority
        case.updated_at = self.clock()
        self._audit(
            "case.assessed",
            actor=actor,
            entity_type="case",
            entity_id=case.id,
            case_id=case.id,
            data={
                "verdict": verdict,
                "confidence": confidence,
                "priority": priority,
                "rationale": rationale,
                "calibration": calibration,
            },
        )
        return case

    @mutation("note.drafted")
    def draft_note(
        self,
        case_id: int,
        body: str,
        *,
        author: str,
        author_kind: AuthorKind | str = AuthorKind.model,
        kind: str = DEFAULT_NOTE_KIND,
        comment: str | None = None,
    ) -> NoteRevision:
        """A new draft: creates the case's note, or adds a draft revision to it."""
        self.get_case(case_id)
        now = self.clock()
        note = self.get_note(case_id, kind=kind)
        if note is None:
            note = Note(
                case_id=case_id,
                kind=kind,
                status=NoteStatus.draft.value,
                current_revision=0,
                created_at=now,
                updated_at=now,
            )
            self.session.add(note)
            self.session.flush()
        rev = self._new_revision(
            note, body, author=author, author_kind=author_kind, diff=None, comment=comment
        )
        note.stale_at = None  # a fresh draft answers the alerts that made the old one stale
        note.status = NoteStatus.draft.value
        self._audit(
            "note.drafted",
            actor=author,
            entity_type="note",
            entity_id=note.id,
            case_id=case_id,
            data={"revision": rev.revision, "kind": kind},
        )
        return rev

    @mutation("note.decided")
    def decide_note(
        self,
        case_id: int,
        *,
        status: NoteStatus | str,
        actor: str,
        body: str | None = None,
        comment: str | None = None,
        kind: str = DEFAULT_NOTE_KIND,
    ) -> NoteRevision:
        """An analyst's decision on the current draft: approve (optionally with an edited body) or reject.

        An edit is stored as a new revision whose ``diff`` is the unified diff against the draft.
        """
        note = self.get_note(case_id, kind=kind)
        if note is None:
            raise ConflictError(f"case {case_id} has no note to decide on")
        current = self.get_current_revision(note)
        target = NoteStatus(status)
        if body is not None and body != current.body:
            rev = self._new_revision(
                note,
                body,
                author=actor,
                author_kind=AuthorKind.analyst,
                diff=unified_diff(current.body, body),
                comment=comment,
            )
        else:
            rev = current
            if comment:
                rev.comment = comment
        note.status = target.value
        note.updated_at = self.clock()
        self._audit(
            "note.decided",
            actor=actor,
            entity_type="note",
            entity_id=note.id,
            case_id=case_id,
            data={"status": target.value, "revision": rev.revision, "edited": rev is not current},
        )
        return rev

    @mutation("action.recorded")
    def record_action(
        self, case_id: int, action: str, *, actor: str, detail: dict[str, Any] | None = None
    ) -> AuditEvent:
        """An action taken on the case (containment, ...): the only source of "Actions taken"."""
        self.get_case(case_id)
        return self._audit(
            "action.recorded",
            actor=actor,
            entity_type="case",
            entity_id=case_id,
            case_id=case_id,
            data={"action": action, **(detail or {})},
        )

    @mutation("action.*")
    def audit_action(
        self, case_id: int, event: str, *, actor: str, entity_id: Any, data: dict[str, Any]
    ) -> AuditEvent:
        """A response action's life (``action.proposed``, ``.approved``, ``.declined``, ``.refused``,
        ``.failed``; a result is ``record_action``): one audit event on the ``case_action`` entity."""
        if not event.startswith("action.") or event == "action.recorded":
            raise ValueError(f"not an action lifecycle event: {event}")
        return self._audit(
            event, actor=actor, entity_type="case_action", entity_id=entity_id, case_id=case_id, data=data
        )

    @mutation("note.revised")
    def revise_note(
        self,
        case_id: int,
        body: str,
        *,
        author: str,
        kind: str = DEFAULT_NOTE_KIND,
        comment: str | None = None,
    ) -> NoteRevision:
        """A new revision written by socflow itself (e.g. "Actions taken" after approved actions ran);
        the note keeps its status, and the revision keeps the diff from the one before."""
        note = self.get_note(case_id, kind=kind)
        if note is None:
            raise NotFoundError(f"case {case_id} has no {kind} note")
        current = self.get_current_revision(note)
        rev = self._new_revision(
            note,
            body,
            author=author,
            author_kind=AuthorKind.system,
            diff=unified_diff(current.body, body),
            comment=comment,
        )
        self._audit(
            "note.revised",
            actor=author,
            entity_type="note",
            entity_id=note.id,
            case_id=case_id,
            data={"revision": rev.revision, "kind": kind, "status": note.status},
        )
        return rev

    def _add_new(
        self,
        case_id: int,
        items: Sequence[BaseModel],
        *,
        model: type[_CaseRow],
        key: Callable[[Any], Hashable],
        existing: set[Hashable],
        action: str,
        actor: str,
        describe: Callable[[list[_CaseRow]], dict[str, Any]],
    ) -> list[_CaseRow]:
        """Rows of ``model`` for the items whose ``key`` is not ``existing`` yet; one audit event if any."""
        now = self.clock()
        added: list[_CaseRow] = []
        for item in items:
            if key(item) in existing:
                continue
            existing.add(key(item))
            row = model(case_id=case_id, created_at=now, **item.model_dump())
            self.session.add(row)
            added.append(row)
        if added:
            self.session.flush()
            self._audit(
                action,
                actor=actor,
                entity_type="case",
                entity_id=case_id,
                case_id=case_id,
                data=describe(added),
            )
        return added

    @mutation("evidence.added")
    def add_evidence(self, case_id: int, items: Sequence[EvidenceRecord], *, actor: str) -> list[Evidence]:
        """Store evidence items; ids already on the case are skipped (no audit event when nothing is new)."""
        self.get_case(case_id)
        existing: set[Hashable] = set(
            self.session.scalars(select(Evidence.evidence_id).where(Evidence.case_id == case_id))
        )
        return self._add_new(
            case_id,
            items,
            model=Evidence,
            key=lambda e: e.evidence_id,
            existing=existing,
            action="evidence.added",
            actor=actor,
            describe=lambda rows: {"evidence_ids": [e.evidence_id for e in rows]},
        )

    @mutation("techniques.added")
    def add_techniques(
        self, case_id: int, items: Sequence[TechniqueRecord], *, actor: str
    ) -> list[CaseTechnique]:
        """Store validated techniques; (technique, source) pairs already on the case are skipped."""
        self.get_case(case_id)
        existing: set[Hashable] = {(t.technique_id, t.source) for t in self.list_techniques(case_id)}
        return self._add_new(
            case_id,
            items,
            model=CaseTechnique,
            key=lambda t: (t.technique_id, t.source),
            existing=existing,
            action="techniques.added",
            actor=actor,
            describe=lambda rows: {"techniques": [[t.technique_id, t.source] for t in rows]},
        )

    @mutation("run.*")
    def record_run_event(
        self, run_id: str, action: str, *, case_id: int | None, actor: str, data: dict[str, Any] | None = None
    ) -> AuditEvent:
        """A workflow run's state change (``run.queued``, ``run.completed``, ...)."""
        if not action.startswith("run."):
            raise ValueError("run events are named run.<something>")
        return self._audit(
            action, actor=actor, entity_type="run", entity_id=run_id, case_id=case_id, data=data
        )

    @mutation("alert.moved")
    def move_alert(self, alert_id: int, case_id: int, *, actor: str) -> Alert:
        """Move an alert (and its observables) to another case."""
        alert = self.get_alert(alert_id)
        target = self.get_case(case_id)
        source_case = alert.case_id
        if source_case == target.id:
            raise ConflictError(f"alert {alert_id} is already in case {case_id}")
        alert.case_id = target.id
        alert.grouping_reason = f"moved from case {source_case} by {actor}"
        for obs in self.session.scalars(select(Observable).where(Observable.alert_id == alert_id)):
            obs.case_id = target.id
        if Severity(alert.severity).rank > Severity(target.severity).rank:
            target.severity = alert.severity
        target.updated_at = self.clock()
        self._audit(
            "alert.moved",
            actor=actor,
            entity_type="alert",
            entity_id=alert_id,
            case_id=target.id,
            data={"from_case": source_case, "to_case": target.id},
        )
        return alert

    @mutation("case.merged")
    def merge_cases(self, case_id: int, into: int, *, actor: str) -> Case:
        """Move every alert of ``case_id`` into ``into`` and close ``case_id`` as merged."""
        source_case = self.get_case(case_id)
        target = self.get_case(into)
        if source_case.id == target.id:
            raise ConflictError("a case cannot be merged into itself")
        moved = 0
        for alert in self.list_alerts(case_id=case_id, limit=1_000_000):
            alert.case_id = target.id
            alert.grouping_reason = f"merged from case {case_id} by {actor}"
            moved += 1
        for obs in self.session.scalars(select(Observable).where(Observable.case_id == case_id)):
            obs.case_id = target.id
        if Severity(source_case.severity).rank > Severity(target.severity).rank:
            target.severity = source_case.severity
        now = self.clock()
        source_case.status = CaseStatus.closed.value
        source_case.closed_at = now
        source_case.updated_at = target.updated_at = now
        self._audit(
            "case.merged",
            actor=actor,
            entity_type="case",
            entity_id=case_id,
            case_id=target.id,
            data={"from_case": case_id, "into": target.id, "alerts_moved": moved},
        )
        return target

    @mutation("case.labelled")
    def set_analyst_labels(
        self,
        case_id: int,
        *,
        actor: str,
        verdict: Verdict | str | None = None,
        techniques: Sequence[TechniqueRecord] = (),
    ) -> list[CaseTechnique]:
        """An analyst's verdict/technique labels for evaluation; the model's verdict and techniques stay."""
        case = self.get_case(case_id)
        existing = {(t.technique_id, t.source) for t in self.list_techniques(case_id)}
        now = self.clock()
        added: list[CaseTechnique] = []
        for item in techniques:
            record = item.model_copy(update={"source": "analyst"})
            if (record.technique_id, "analyst") in existing:
                continue
            existing.add((record.technique_id, "analyst"))
            row = CaseTechnique(case_id=case_id, created_at=now, **record.model_dump())
            self.session.add(row)
            added.append(row)
        self.session.flush()
        case.updated_at = now
        self._audit(
            "case.labelled",
            actor=actor,
            entity_type="case",
            entity_id=case_id,
            case_id=case_id,
            data={
                "verdict": Verdict(verdict).value if verdict else None,
                "model_verdict": case.verdict,
                "techniques": [t.technique_id for t in techniques],
            },
        )
        return added

    @mutation("token.created")
    def create_token(
        self,
        *,
        name: str,
        role: str,
        token_hash: str,
        prefix: str,
        actor: str,
        expires_at: datetime | None = None,
        sources: Sequence[str] | None = None,
        ingest_format: str | None = None,
    ) -> ApiToken:
        """Store a token's hash (the caller shows the token once and never stores it)."""
        row = ApiToken(
            name=name[:200],
            role=role,
            token_hash=token_hash,
            prefix=prefix[:16],
            created_at=self.clock(),
            expires_at=expires_at,
            sources=sorted(set(sources)) if sources is not None else None,
            ingest_format=ingest_format,
        )
        self.session.add(row)
        self.session.flush()
        self._audit(
            "token.created",
            actor=actor,
            entity_type="token",
            entity_id=row.id,
            case_id=None,
            data={
                "name": row.name,
                "role": role,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return row

    @mutation("token.revoked")
    def revoke_token(self, token_id: int, *, actor: str) -> ApiToken:
        row = self.session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"token {token_id} does not exist")
        if row.revoked_at is None:
            row.revoked_at = self.clock()
        self._audit(
            "token.revoked",
            actor=actor,
            entity_type="token",
            entity_id=row.id,
            case_id=None,
            data={"name": row.name},
        )
        return row

    @mutation("note.marked_stale")
    def mark_draft_stale(self, case_id: int, *, actor: str, reason: str) -> list[Note]:
        """A new alert joined the case: its drafts (of every note kind) are stale, deciding on them is
        refused. One audit event names every note marked; none when no draft was fresh."""
        notes = [n for n in self.list_draft_notes(case_id) if n.stale_at is None]
        if not notes:
            return []
        now = self.clock()
        for note in notes:
            note.stale_at = now
        self._audit(
            "note.marked_stale",
            actor=actor,
            entity_type="note",
            entity_id=notes[0].id,
            case_id=case_id,
            data={"reason": reason, "notes": [n.id for n in notes], "kinds": [n.kind for n in notes]},
        )
        return notes

    # -- console --
    @mutation("case.acknowledged")
    def acknowledge_case(self, case_id: int, *, actor: str, via: str) -> Case | None:
        """The first analyst action on a case (``via``: opened, assigned, decided) acknowledges it.

        Idempotent: a case already acknowledged keeps its first acknowledgement and no event is added.
        """
        case = self.get_case(case_id)
        if case.acknowledged_at is not None:
            return None
        case.acknowledged_at = self.clock()
        case.acknowledged_by = actor[:200]
        self._audit(
            "case.acknowledged",
            actor=actor,
            entity_type="case",
            entity_id=case.id,
            case_id=case.id,
            data={"via": via},
        )
        return case

    def list_tokens(self) -> list[ApiToken]:
        return list(self.session.scalars(select(ApiToken).order_by(ApiToken.id)))

    def _new_revision(
        self,
        note: Note,
        body: str,
        *,
        author: str,
        author_kind: AuthorKind | str,
        diff: str | None,
        comment: str | None,
    ) -> NoteRevision:
        note.current_revision += 1
        note.updated_at = self.clock()
        rev = NoteRevision(
            note_id=note.id,
            revision=note.current_revision,
            body=body,
            author=author,
            author_kind=AuthorKind(author_kind).value,
            diff=diff,
            comment=comment,
            created_at=self.clock(),
        )
        self.session.add(rev)
        self.session.flush()
        return rev


def mutating_methods(cls: type = CaseStore) -> dict[str, str]:
    """Public methods marked ``@mutation``, with their audit action."""
    return {
        name: member.__socflow_mutation__
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member) and hasattr(member, "__socflow_mutation__")
    }


def public_methods(cls: type = CaseStore) -> Sequence[str]:
    return sorted(name for name, member in vars(cls).items() if not name.startswith("_") and callable(member))


# -- run steps (core-a) ----------------------------------------------------------------------------------
# Run bookkeeping like the runner's ``workflow_runs`` rows, not case data: no audit event. Written in the
# transaction of the node's own rows (``socflow.steps``), so both commit or neither does.


def find_run_step(session: Session, run_id: str, node: str, key: str) -> dict[str, Any] | None:
    """The state update a run's node recorded for this visit (``key``), or None."""
    stmt = select(RunStep.update).where(RunStep.run_id == run_id, RunStep.node == node, RunStep.key == key)
    found = session.scalar(stmt.limit(1))
    return dict(found) if found is not None else None


def record_run_step(
    session: Session, run_id: str, node: str, key: str, update: dict[str, Any], *, at: datetime
) -> None:
    session.add(RunStep(run_id=run_id, node=node, key=key, update=update, created_at=at))
    session.flush()


# -- bulk ingest (issue 18) ------------------------------------------------------------------------------
# Set-based inserts of the rows ``create_case`` and ``add_alert`` write one by one, with the same audit events
# (one per case, one per alert), for ``socflow.ingest``'s chunk writer. Ids come back in parameter order.


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class (set-based inserts skip the ORM's per-row work)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert_returning_ids(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their new ids in the order of ``rows``.

    PostgreSQL: SQLAlchemy's ``sort_by_parameter_order`` (batched, ordered by a sentinel). SQLite: there it
    would fall back to one statement per row, but SQLite gives the rows of one multi-row INSERT consecutive
    ascending rowids in VALUES order, and the transaction holds the write lock, so the ids sorted are the ids
    in parameter order.
    """
    if session.get_bind().dialect.name == "sqlite":
        ids = sorted(int(i) for i in session.scalars(insert(table).returning(table.c.id), list(rows)))
    else:
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = [int(i) for i in session.scalars(stmt, list(rows))]
    if len(ids) != len(rows):
        raise RuntimeError(f"insert into {table.name} returned {len(ids)} ids for {len(rows)} rows")
    return ids


def insert_audit_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Audit events as dicts of ``AuditEvent`` columns, in one set-based insert."""
    if rows:
        session.execute(insert(table_of(AuditEvent)), list(rows))


def insert_cases(session: Session, rows: Sequence[dict[str, Any]], *, actor: str) -> list[int]:
    """New cases (dicts of ``Case`` columns) and their ``case.created`` events; their ids, in order."""
    if not rows:
        return []
    ids = _insert_returning_ids(session, table_of(Case), rows)
    insert_audit_events(
        session,
        [
            {
                "at": row["created_at"],
                "actor": actor,
                "action": "case.created",
                "entity_type": "case",
                "entity_id": str(case_id),
                "case_id": case_id,
                "data": {"severity": row["severity"], "grouping_key": row.get("grouping_key")},
            }
            for case_id, row in zip(ids, rows, strict=True)
        ],
    )
    return ids


def insert_alerts(
    session: Session,
    rows: Sequence[dict[str, Any]],
    observables: Sequence[Iterable[tuple[ObservableType, str]]],
    events: Sequence[dict[str, Any]],
    *,
    actor: str,
) -> list[int]:
    """Alerts (dicts of ``Alert`` columns), their observables and their ``alert.ingested`` events (``events``:
    each alert's event data); their ids, in order."""
    if not rows:
        return []
    ids = _insert_returning_ids(session, table_of(Alert), rows)
    obs_rows = [
        {"alert_id": alert_id, "case_id": row["case_id"], "type": kind.value, "value": value[:2048]}
        for alert_id, row, found in zip(ids, rows, observables, strict=True)
        for kind, value in found
    ]
    if obs_rows:
        session.execute(insert(table_of(Observable)), obs_rows)
    insert_audit_events(
        session,
        [
            {
                "at": row["received_at"],
                "actor": actor,
                "action": "alert.ingested",
                "entity_type": "alert",
                "entity_id": str(alert_id),
                "case_id": row["case_id"],
                "data": data,
            }
            for alert_id, row, data in zip(ids, rows, events, strict=True)
        ],
    )
    return ids
