"""Proposed actions as rows (``case_actions``), the analyst's sub-decisions, and their execution.

* ``store_proposals`` (in the drafting node's transaction): new proposals become ``proposed`` rows and
  approval items; refusals (an action not enabled, a target that fails its type) are audited
  ``action.refused`` and never offered. A proposal the policy lets run without approval
  (``catalog.unattended_actions``) is approved by ``socflow:policy`` at once and not offered.
* ``apply_item_decisions`` (in the deciding node's transaction): each approved item becomes ``approved``
  and gets an outbox row (target ``action``) so it runs after the decision commits; declined ones are
  ``declined``; escalating declines them all. An approved item whose action is not enabled (any more)
  is ``refused`` and audited. Actions that already ran are written into the just-approved note.
* ``ActionTarget`` (the outbox's ``action`` target): runs one approved action through its connector,
  records the result (``record_action``: the note's "Actions taken" source) and adds a note revision
  authored by socflow whose "Actions taken" section lists the results; the rest of the analyst's approved
  text is unchanged.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.actions.catalog import LABELS, ActionId, Catalog, TargetRefused, TargetType, validate_target
from socflow.actions.connectors import ActionConnector, ActionRequest, build_connector
from socflow.actions.propose import ProposalSet
from socflow.enums import DEFAULT_NOTE_KIND, NoteStatus
from socflow.http import RemoteError, RemoteHTTPError
from socflow.schemas import now_utc
from socflow.store import CaseStore
from socflow.tables import CaseAction, OutboxMessage

ACTOR = "socflow:actions"
POLICY_ACTOR = "socflow:policy"
ACTIONS_HEADING = "## Actions taken"
NO_ACTIONS = "No response actions were recorded."
_ITEM_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


class ActionStatus:
    proposed = "proposed"
    approved = "approved"
    declined = "declined"
    refused = "refused"
    succeeded = "succeeded"
    failed = "failed"


def item_id_for(action: str, target: str) -> str:
    """The approval item id of (action, target): ``isolate_host:WS-01``, or a digest for other targets."""
    if _ITEM_SAFE.fullmatch(target):
        return f"{action}:{target}"
    return f"{action}:h{hashlib.sha256(target.encode()).hexdigest()[:16]}"


def _refuse(store: CaseStore, case_id: int, action: str, target: str, why: str, *, actor: str) -> None:
    store.audit_action(
        case_id,
        "action.refused",
        actor=actor,
        entity_id=item_id_for(action[:32], target[:300]),
        data={"action": action[:100], "target": target[:300], "reason": why[:500]},
    )


def list_actions(session: Session, case_id: int) -> list[CaseAction]:
    return list(
        session.scalars(select(CaseAction).where(CaseAction.case_id == case_id).order_by(CaseAction.id))
    )


def store_proposals(
    store: CaseStore,
    case_id: int,
    run_id: str,
    found: ProposalSet,
    *,
    labels: Mapping[str, str],
    actor: str,
    catalog: Catalog | None = None,
    unattended: Mapping[str, str] | None = None,
    note_kind: str = DEFAULT_NOTE_KIND,
) -> list[dict[str, str]]:
    """Record ``found`` (see the module docstring); returns the approval items of the case's proposed
    rows (``labels``: evidence id -> its ``E#`` label, for the item summaries). A new proposal whose
    action is in ``unattended`` (``catalog.unattended_actions``: the policy's trusted facts hold) is
    approved by policy at once, its outbox row in this transaction, and not offered to the analyst."""
    for action, target, why in found.refused:
        _refuse(store, case_id, action, target, why, actor=actor)
    now = now_utc()
    rows = {r.item_id: r for r in list_actions(store.session, case_id)}
    for p in found.proposals:
        item = item_id_for(p.action, p.target)
        row = rows.get(item)
        if row is not None:
            if row.status == ActionStatus.proposed:  # offered again by a redraft: the newer evidence
                row.evidence_ids, row.run_id, row.updated_at = list(p.evidence_ids), run_id, now
            continue
        row = CaseAction(
            case_id=case_id,
            run_id=run_id,
            item_id=item,
            action=p.action,
            target_type=p.target_type.value,
            target=p.target,
            evidence_ids=list(p.evidence_ids),
            rationale=p.rationale[:2000],
            proposed_by=f"{actor} ({found.source})",
            status=ActionStatus.proposed,
            created_at=now,
            updated_at=now,
        )
        store.session.add(row)
        store.session.flush()
        rows[item] = row
        store.audit_action(
            case_id,
            "action.proposed",
            actor=actor,
            entity_id=item,
            data={"action": p.action, "target": p.target, "evidence_ids": list(p.evidence_ids)},
        )
        policy_reason = (unattended or {}).get(p.action)
        if policy_reason is not None and catalog is not None and catalog.is_enabled(p.action):
            _approve(
                store, row, catalog, actor=POLICY_ACTOR, note_kind=note_kind, run_id=run_id, why=policy_reason
            )
    items = []
    for row in rows.values():
        if row.status != ActionStatus.proposed:
            continue
        cites = ", ".join(labels.get(e, e) for e in row.evidence_ids)
        label = (
            LABELS.get(ActionId(row.action), row.action) if row.action in ActionId.__members__ else row.action
        )
        items.append({"item_id": row.item_id, "summary": f"{label}: {row.target} [{cites}]"})
    return items


def _approve(
    store: CaseStore,
    row: CaseAction,
    catalog: Catalog,
    *,
    actor: str,
    note_kind: str,
    run_id: str,
    why: str | None = None,
) -> None:
    """Mark ``row`` approved and add its outbox row (target ``action``) to the current transaction."""
    now = now_utc()
    connector, _ = catalog.connector_for(ActionId(row.action))
    row.status, row.connector, row.delivery_id = ActionStatus.approved, connector, str(uuid.uuid4())
    row.decided_by, row.decided_at, row.updated_at = row.decided_by or actor, row.decided_at or now, now
    data: dict[str, Any] = {
        "action": row.action,
        "target": row.target,
        "connector": connector,
        "delivery_id": row.delivery_id,
    }
    if why is not None:
        data |= {"without_approval": True, "reason": why}
    store.audit_action(row.case_id, "action.approved", actor=actor, entity_id=row.item_id, data=data)
    store.session.add(
        OutboxMessage(
            id=row.delivery_id,
            dedup_key=f"action:{row.case_id}:{row.id}",
            target="action",
            case_id=row.case_id,
            status="pending",
            payload={"case_action_id": row.id, "note_kind": note_kind, "run_id": run_id},
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def apply_item_decisions(
    store: CaseStore,
    case_id: int,
    decision: Mapping[str, Any],
    catalog: Catalog,
    *,
    note_kind: str = DEFAULT_NOTE_KIND,
    run_id: str,
) -> list[CaseAction]:
    """Apply the analyst's per-item choices (approve/edit decisions only; see the module docstring).
    Returns the rows approved to run."""
    action = str(decision.get("action", ""))
    user = str(decision.get("user", ""))
    rows = {r.item_id: r for r in list_actions(store.session, case_id)}
    now = now_utc()
    approved: list[CaseAction] = []
    choices = decision.get("items") or []
    if action not in ("approve", "edit"):
        if action == "escalate":  # the note was not approved: nothing it proposed runs
            for row in rows.values():
                if row.status == ActionStatus.proposed:
                    row.status, row.decided_by, row.decided_at, row.updated_at = (
                        ActionStatus.declined,
                        user,
                        now,
                        now,
                    )
                    row.error = "not run: the case was escalated without an approved note"
                    store.audit_action(
                        case_id,
                        "action.declined",
                        actor=user,
                        entity_id=row.item_id,
                        data={"action": row.action, "target": row.target, "reason": row.error},
                    )
        return approved
    for choice in choices:
        item_id, verdict = str(choice.get("item_id")), str(choice.get("choice"))
        found = rows.get(item_id)
        if found is None or found.status != ActionStatus.proposed:
            _refuse(
                store,
                case_id,
                item_id.split(":")[0],
                item_id,
                "not a pending proposal of this case",
                actor=user,
            )
            continue
        row = found
        row.decided_by, row.decided_at, row.updated_at = user, now, now
        if verdict != "approve":
            row.status = ActionStatus.declined
            store.audit_action(
                case_id,
                "action.declined",
                actor=user,
                entity_id=row.item_id,
                data={"action": row.action, "target": row.target},
            )
            continue
        if not catalog.is_enabled(row.action):
            row.status, row.error = ActionStatus.refused, "not enabled in this deployment's action catalog"
            _refuse(store, case_id, row.action, row.target, row.error, actor=user)
            continue
        _approve(store, row, catalog, actor=user, note_kind=note_kind, run_id=run_id)
        approved.append(row)
    sync_note_actions(store, case_id, note_kind=note_kind)  # actions that ran before the approval
    return approved


def result_line(row: CaseAction, audit_id: int | None) -> str:
    label = row.action if row.action not in ActionId.__members__ else LABELS[ActionId(row.action)]
    when = (row.finished_at or now_utc()).isoformat(timespec="seconds")
    what = row.result if row.status == ActionStatus.succeeded else f"FAILED: {row.error}"
    ref = f", reference {row.reference}" if row.reference else ""
    audit = f" (audit {audit_id})" if audit_id is not None else ""
    return (
        f"- {when}: {label} {row.target} via {row.connector}, approved by {row.decided_by}: "
        f"{' '.join((what or '').split())[:300]}{ref}; delivery {row.delivery_id}{audit}"
    )


def sync_note_actions(store: CaseStore, case_id: int, *, note_kind: str = DEFAULT_NOTE_KIND) -> bool:
    """If the note is approved, add every finished action its "Actions taken" does not list yet (by
    delivery id) as one revision authored by socflow. Returns whether it revised the note."""
    note = store.get_note(case_id, kind=note_kind)
    if note is None or note.status != NoteStatus.approved.value:
        return False
    body = store.get_current_revision(note).body
    recorded = {
        str((e.data or {}).get("delivery_id")): e.id
        for e in store.list_audit(case_id=case_id, action="action.recorded")
    }
    finished = [
        r
        for r in list_actions(store.session, case_id)
        if r.status in (ActionStatus.succeeded, ActionStatus.failed)
        and r.delivery_id
        and r.delivery_id not in body
    ]
    if not finished:
        return False
    lines = [result_line(r, recorded.get(r.delivery_id or "")) for r in finished]
    revised = with_actions_section(body, lines)
    if revised == body:
        return False
    what = ", ".join(f"{r.action} {r.target} {r.status}" for r in finished)
    store.revise_note(case_id, revised, author=ACTOR, kind=note_kind, comment=f"Actions taken: {what}"[:2000])
    return True


def with_actions_section(body: str, lines: Sequence[str]) -> str:
    """``body`` whose "Actions taken" section lists ``lines`` (the section is added at the end when the
    note has none); every other line is kept as it is."""
    text = body.split("\n")
    try:
        start = next(i for i, line in enumerate(text) if line.strip() == ACTIONS_HEADING)
    except StopIteration:
        return body.rstrip("\n") + f"\n\n{ACTIONS_HEADING}\n\n" + "\n".join(lines) + "\n"
    end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
    kept = [
        line
        for line in text[start + 1 : end]
        if line.strip() and line.strip() != NO_ACTIONS and line not in lines
    ]
    section = [ACTIONS_HEADING, "", *kept, *lines, ""]
    return "\n".join(text[:start] + section + text[end:])


class ActionTarget:
    """The outbox target ``action``: executes one approved ``case_actions`` row (module docstring)."""

    kind = "action"

    def __init__(
        self,
        factory: sessionmaker[Session],
        catalog: Catalog,
        *,
        transport: httpx.BaseTransport | None = None,
        connectors: Mapping[str, ActionConnector] | None = None,
        clock: Callable[[], Any] = now_utc,
    ) -> None:
        self.factory = factory
        self.catalog = catalog
        self.transport = transport
        self.connectors = dict(connectors or {})
        self.clock = clock

    def close(self) -> None:
        return None

    def _connector(self, name: str) -> ActionConnector:
        if name not in self.connectors:
            self.connectors[name] = build_connector(self.catalog.connectors[name], transport=self.transport)
        return self.connectors[name]

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        row_id = int(payload.get("case_action_id", 0))
        note_kind = str(payload.get("note_kind") or DEFAULT_NOTE_KIND)
        with self.factory() as session:
            row = session.get(CaseAction, row_id)
            if row is None:
                raise RemoteHTTPError(f"action {row_id}: no such proposed action")
            if row.status in (ActionStatus.succeeded, ActionStatus.failed, ActionStatus.refused):
                return  # already done: a repeat of this delivery does nothing
            if row.status != ActionStatus.approved:
                raise RemoteHTTPError(f"action {row.item_id} is {row.status}, not approved: not run")
            session.expunge(row)
        why = None
        if not self.catalog.is_enabled(row.action):
            why = "not enabled in this deployment's action catalog"
        else:
            try:
                validate_target(TargetType(row.target_type), row.target)
            except (TargetRefused, ValueError) as exc:
                why = str(exc)
        if why is not None:
            self._finish(row, ActionStatus.refused, note_kind, error=why)
            raise RemoteHTTPError(f"action {row.item_id} refused: {why}")
        name, _ = self.catalog.connector_for(ActionId(row.action))
        request = ActionRequest(
            delivery_id=delivery_id,
            case_id=row.case_id,
            action=ActionId(row.action),
            target_type=TargetType(row.target_type),
            target=row.target,
            approved_by=row.decided_by or "",
            comment=f"socflow case {row.case_id}: {LABELS[ActionId(row.action)]} "
            f"approved by {row.decided_by}",
        )
        try:
            result = self._connector(name).execute(request)
        except TargetRefused as exc:
            self._finish(row, ActionStatus.refused, note_kind, error=exc.reason)
            raise RemoteHTTPError(f"action {row.item_id} refused: {exc.reason}") from None
        except RemoteError as exc:
            if exc.retryable:
                with self.factory() as session, session.begin():
                    live = session.get(CaseAction, row.id)
                    if live is not None:
                        live.error, live.updated_at = str(exc)[:1000], self.clock()
                raise
            self._finish(row, ActionStatus.failed, note_kind, error=str(exc)[:1000])
            raise
        self._finish(
            row, ActionStatus.succeeded, note_kind, result=result.summary, reference=result.reference
        )

    def _finish(
        self,
        row: CaseAction,
        status: str,
        note_kind: str,
        *,
        result: str | None = None,
        reference: str = "",
        error: str | None = None,
    ) -> None:
        """Record the outcome, audit it and, for a result, revise the note's "Actions taken"."""
        with self.factory() as session, session.begin():
            store = CaseStore(session)
            live = session.get(CaseAction, row.id)
            assert live is not None
            now = self.clock()
            live.status, live.result, live.reference, live.error = status, result, reference or None, error
            live.finished_at = live.updated_at = now
            data = {
                "action": live.action,
                "target": live.target,
                "connector": live.connector,
                "delivery_id": live.delivery_id,
                "item_id": live.item_id,
            }
            if status == ActionStatus.refused:
                _refuse(store, live.case_id, live.action, live.target, error or "refused", actor=ACTOR)
                return
            if status == ActionStatus.failed:
                store.audit_action(
                    live.case_id,
                    "action.failed",
                    actor=ACTOR,
                    entity_id=live.item_id,
                    data={**data, "error": error},
                )
            else:
                store.record_action(
                    live.case_id,
                    live.action,
                    actor=ACTOR,
                    detail={**data, "result": result, "reference": reference, "approved_by": live.decided_by},
                )
                session.flush()  # the event's id, cited by the note line
            sync_note_actions(store, live.case_id, note_kind=note_kind)
