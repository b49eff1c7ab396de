"""The case store is the only writer, and every public mutation leaves exactly one audit event.

The audit test finds mutating methods by introspection: a new public method that is neither marked
``@mutation`` nor named like a read, or a new mutation without a scenario here, fails the suite.
"""

import fnmatch
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.enums import CaseStatus, NoteStatus, Severity
from socflow.errors import ConflictError, InvalidTransition
from socflow.schemas import AlertIn, EvidenceRecord, TechniqueRecord
from socflow.store import READ_PREFIXES, CaseStore, mutating_methods, public_methods
from socflow.tables import AuditEvent, NoteRevision


def _alert(ref: str = "a-1") -> AlertIn:
    return AlertIn.model_validate(
        {"source": "test", "source_ref": ref, "title": "t", "severity": "high", "entities": {"hosts": ["H1"]}}
    )


def _case(store: CaseStore) -> int:
    return store.create_case(title="c", severity="low", actor="t").id


def _drafted(store: CaseStore) -> int:
    cid = _case(store)
    store.move_case(cid, "triaging", actor="t")
    store.draft_note(cid, "draft body", author="model")
    return cid


# name -> (setup returning args for the call, the call)
SCENARIOS: dict[str, tuple[Callable[[CaseStore], Any], Callable[[CaseStore, Any], Any]]] = {
    "create_case": (lambda s: None, lambda s, _: s.create_case(title="x", severity="high", actor="t")),
    "add_alert": (
        _case,
        lambda s, cid: s.add_alert(_alert(), dedup_key="a-1", case_id=cid, actor="t"),
    ),
    "move_case": (_case, lambda s, cid: s.move_case(cid, CaseStatus.triaging, actor="t")),
    "update_case": (_case, lambda s, cid: s.update_case(cid, actor="t", assignee="bob")),
    "set_assessment": (
        _case,
        lambda s, cid: s.set_assessment(
            cid, verdict="true_positive", confidence=0.8, priority="high", actor="t"
        ),
    ),
    "draft_note": (_case, lambda s, cid: s.draft_note(cid, "body", author="model")),
    "decide_note": (
        _drafted,
        lambda s, cid: s.decide_note(cid, status=NoteStatus.approved, actor="ana", body="edited body"),
    ),
    "record_action": (_case, lambda s, cid: s.record_action(cid, "host_isolated", actor="edr")),
    "audit_action": (
        _case,
        lambda s, cid: s.audit_action(
            cid, "action.proposed", actor="t", entity_id=1, data={"action": "isolate_host"}
        ),
    ),
    "revise_note": (_drafted, lambda s, cid: s.revise_note(cid, "revised body", author="socflow")),
    "add_evidence": (
        _case,
        lambda s, cid: s.add_evidence(
            cid, [EvidenceRecord(evidence_id="E1", kind="siem_event", summary="x")], actor="t"
        ),
    ),
    "add_techniques": (
        _case,
        lambda s, cid: s.add_techniques(
            cid, [TechniqueRecord(technique_id="T1059.001", name="PowerShell", source="rule_tag")], actor="t"
        ),
    ),
    "move_alert": (
        lambda s: (s.add_alert(_alert(), dedup_key="a-1", case_id=_case(s), actor="t").id, _case(s)),
        lambda s, ids: s.move_alert(ids[0], ids[1], actor="ana"),
    ),
    "merge_cases": (
        lambda s: (_case(s), _case(s)),
        lambda s, ids: s.merge_cases(ids[0], ids[1], actor="ana"),
    ),
    "set_analyst_labels": (
        _case,
        lambda s, cid: s.set_analyst_labels(
            cid,
            actor="ana",
            verdict="false_positive",
            techniques=[
                TechniqueRecord(technique_id="T1105", name="Ingress Tool Transfer", source="analyst")
            ],
        ),
    ),
    "create_token": (
        lambda s: None,
        lambda s, _: s.create_token(
            name="soar", role="ingest", token_hash="a" * 64, prefix="sf_abc", actor="t"
        ),
    ),
    "revoke_token": (
        lambda s: s.create_token(name="x", role="ingest", token_hash="b" * 64, prefix="sf_x", actor="t").id,
        lambda s, tid: s.revoke_token(tid, actor="t"),
    ),
    "mark_draft_stale": (_drafted, lambda s, cid: s.mark_draft_stale(cid, actor="t", reason="new alert")),
    "record_run_event": (
        _case,
        lambda s, cid: s.record_run_event("r-1", "run.queued", case_id=cid, actor="t"),
    ),
    "acknowledge_case": (_case, lambda s, cid: s.acknowledge_case(cid, actor="web:ana", via="opened")),
}


def test_every_public_method_is_a_read_or_an_audited_mutation() -> None:
    mutations = mutating_methods()
    for name in public_methods():
        assert name in mutations or name.startswith(READ_PREFIXES), (
            f"CaseStore.{name} is public, not marked @mutation and not named like a read"
        )
    assert set(mutations) == set(SCENARIOS), "every mutation needs an audit scenario in this test"


@pytest.mark.parametrize("method", sorted(mutating_methods()))
def test_each_mutation_leaves_exactly_one_audit_event(db_url: str, method: str) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    setup, call = SCENARIOS[method]
    with factory() as session, session.begin():
        arg = setup(CaseStore(session))
    with factory() as session, session.begin():
        before = session.scalar(select(func.count(AuditEvent.id)))
        call(CaseStore(session), arg)
    with factory() as session:
        after = session.scalar(select(func.count(AuditEvent.id)))
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)))
    engine.dispose()
    assert after - before == 1
    assert fnmatch.fnmatch(events[0].action, mutating_methods()[method])


def test_audit_is_in_the_same_transaction(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    with pytest.raises(RuntimeError), factory() as session, session.begin():
        CaseStore(session).create_case(title="x", severity="low", actor="t")
        raise RuntimeError("boom")
    with factory() as session:
        assert session.scalar(select(func.count(AuditEvent.id))) == 0
    engine.dispose()


def test_status_moves_follow_the_design(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as session, session.begin():
        store = CaseStore(session)
        cid = _case(store)
        with pytest.raises(InvalidTransition):
            store.move_case(cid, CaseStatus.awaiting_approval, actor="t")  # new -> awaiting is not a move
        store.move_case(cid, CaseStatus.triaging, actor="t")
        store.move_case(cid, CaseStatus.awaiting_approval, actor="t")
        case = store.move_case(cid, CaseStatus.escalated, actor="ana", reason="true positive")
        assert case.triaged_at is not None and case.approved_at is not None
        assert [e.data["to"] for e in store.list_audit(case_id=cid, action="case.status_changed")] == [
            "triaging",
            "awaiting_approval",
            "escalated",
        ]


def test_edit_is_stored_as_a_new_revision_with_a_diff(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as session, session.begin():
        store = CaseStore(session)
        cid = _drafted(store)
        rev = store.decide_note(cid, status="approved", actor="ana", body="draft body\nplus analyst line")
        assert rev.revision == 2 and rev.author == "ana" and rev.author_kind == "analyst"
        assert "+plus analyst line" in (rev.diff or "")
        revisions = store.list_revisions(rev.note_id)
        assert [r.body for r in revisions] == ["draft body", "draft body\nplus analyst line"]
        assert session.scalar(select(func.count(NoteRevision.id))) == 2


def test_deciding_without_a_note_is_a_conflict(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as session, session.begin():
        store = CaseStore(session)
        cid = _case(store)
        with pytest.raises(ConflictError):
            store.decide_note(cid, status="approved", actor="ana")


def test_alert_raises_case_severity(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as session, session.begin():
        store = CaseStore(session)
        cid = _case(store)
        store.add_alert(_alert(), dedup_key="a-1", case_id=cid, actor="t")
        assert store.get_case(cid).severity == Severity.high


def test_idempotent_mutations_add_nothing_twice(factory) -> None:  # type: ignore[no-untyped-def]
    ev = [EvidenceRecord(evidence_id="E1", kind="siem_event", summary="x")]
    tech = [TechniqueRecord(technique_id="T1110", name="Brute Force", source="retrieval")]
    with factory() as session, session.begin():
        store = CaseStore(session)
        cid = _case(store)
        assert len(store.add_evidence(cid, ev, actor="t")) == 1
        assert len(store.add_techniques(cid, tech, actor="t")) == 1
        n = len(store.list_audit(case_id=cid))
        assert (
            store.add_evidence(cid, ev, actor="t") == [] and store.add_techniques(cid, tech, actor="t") == []
        )
        assert len(store.list_audit(case_id=cid)) == n


def test_acknowledgement_is_the_first_analyst_action_only(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        store = CaseStore(s)
        cid = _case(store)
        assert store.acknowledge_case(cid, actor="ana", via="assigned") is not None
        assert store.acknowledge_case(cid, actor="bob", via="opened") is None  # the first one stays
        case = store.get_case(cid)
        assert case.acknowledged_by == "ana" and case.acknowledged_at is not None
        assert [e.data["via"] for e in store.list_audit(case_id=cid, action="case.acknowledged")] == [
            "assigned"
        ]
