"""socflow.testing: the in-memory SIEM behind a real workflow, the case factory, the run helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socflow.runner import RunStatus
from socflow.testing import (
    InMemorySiem,
    MemoryEvent,
    RunFailed,
    ScriptedModel,
    WorkflowHarness,
    alert,
    attack_catalog,
)
from tests.workflows.triage_helpers import scripted_rules
from tools.siem.models import EntityQuery

AT = datetime(2025, 4, 9, 10, 5, tzinfo=UTC)


def events() -> list[MemoryEvent]:
    return [
        MemoryEvent(
            "ev-1",
            timestamp=AT.isoformat(),
            host="WS123",
            user="alice",
            process="powershell.exe",
            command_line="powershell -enc SQBFAFgA",
            event_code="4688",
        ),
        MemoryEvent(
            "ev-2", timestamp=(AT + timedelta(minutes=2)).isoformat(), host="ws123", event_code="4625"
        ),
        MemoryEvent(
            "ev-far", timestamp=(AT + timedelta(days=3)).isoformat(), host="WS123", event_code="4624"
        ),
        MemoryEvent("ev-other", timestamp=AT.isoformat(), host="WS999", user="bob", event_code="4688"),
    ]


def test_in_memory_siem_matches_like_a_backend() -> None:
    siem = InMemorySiem(events())
    hits = siem.search(
        EntityQuery(host="WS123", since=AT - timedelta(hours=1), until=AT + timedelta(hours=1))
    )
    assert [e.event_id for e in hits] == ["ev-1", "ev-2"]  # case-insensitive, inside the window
    assert [e.event_id for e in siem.search(EntityQuery(user="ALICE", limit=5))] == ["ev-1"]
    assert siem.search(EntityQuery(host="WS123", limit=1))[0].event_id == "ev-1"
    assert len(siem.queries) == 3
    payload = hits[0].to_evidence("7")
    assert (
        payload["evidence_id"]
        == hits[0].to_evidence("7")["evidence_id"]
        != hits[0].to_evidence("8")["evidence_id"]
    )
    assert payload["kind"] == "siem_event" and "powershell -enc" in payload["summary"]


def test_alert_triage_cites_events_from_the_in_memory_siem(tmp_path: Path) -> None:
    siem = InMemorySiem(events())
    h = WorkflowHarness.create(tmp_path, model=ScriptedModel(scripted_rules()), siem=siem)
    case_id = h.cases.case(
        alert(
            "Encoded PowerShell",
            timestamp=AT,
            hosts=["WS123"],
            users=["alice"],
            tags=["attack.execution", "attack.t1059.001"],
        )
    )
    paused = h.run_to_interrupt("alert_triage", case_id=case_id)
    assert paused.interrupt is not None and "approve" in paused.interrupt["allowed_actions"]
    assert siem.queries  # gather_evidence asked the SIEM
    with h.store() as store:
        sources = {e.source_event_id for e in store.list_evidence(case_id) if e.kind == "siem_event"}
        assert sources == {"ev-1", "ev-2"}
    done = h.resume(paused.run_id, "approve", expect=RunStatus.completed)
    assert h.state(done.run_id)["outcome"] == "escalated"


def test_case_factory_keeps_every_alert_in_one_case(tmp_path: Path) -> None:
    h = WorkflowHarness.create(tmp_path, discover_workflows=False)
    case_id = h.cases.case(
        alert("one", severity="low", users=["alice"]), alert("two", severity="critical", hosts=["DC1"])
    )
    with h.store() as store:
        case = store.get_case(case_id)
        assert case.severity == "critical" and case.title == "one"
        assert [a.title for a in store.list_alerts(case_id=case_id)] == ["one", "two"]
        assert {(o.type, o.value) for o in store.list_observables(case_id=case_id)} >= {
            ("user", "alice"),
            ("host", "DC1"),
        }


def test_run_helper_reports_the_error_of_a_failed_run(tmp_path: Path) -> None:
    h = WorkflowHarness.create(tmp_path, model=ScriptedModel([]))  # every model call is unscripted
    case_id = h.cases.case(alert("Encoded PowerShell", hosts=["WS1"], tags=["attack.t1059.001"]))
    with pytest.raises(RunFailed, match="no script rule"):
        h.run_to_interrupt("alert_triage", case_id=case_id)


def test_attack_catalog_fixture() -> None:
    catalog = attack_catalog()
    assert catalog.resolve("T1003.001").name == "LSASS Memory"
