"""incident_report on the vendor cookbook's incident, with the scripted model choosing among candidates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from socflow.runner import RunStatus
from socflow.testing import ScriptedModel, ScriptRule, WorkflowHarness, alert, attack_catalog

# The cookbook's incident: failed logons for alice on WS123, suspicious PowerShell, an LSASS memory dump,
# then alice logging on to the domain controller DC1 from WS123.
INCIDENT = [
    alert(
        "Multiple failed logon attempts for alice",
        source_ref="ir-1",
        severity="medium",
        timestamp="2025-04-09T10:00:00Z",
        description="5 failed logons (EventID 4625) for user alice on host WS123 within 2 minutes",
        rule_id="r-failed-logons",
        hosts=["WS123"],
        users=["alice"],
    ),
    alert(
        "Suspicious PowerShell execution",
        source_ref="ir-2",
        timestamp="2025-04-09T10:05:10Z",
        description="powershell.exe -nop -w hidden -enc SQBFAFgA... executed by alice on WS123",
        rule_id="r-powershell",
        hosts=["WS123"],
        users=["alice"],
        processes=["powershell.exe"],
    ),
    alert(
        "LSASS memory dump",
        source_ref="ir-3",
        severity="critical",
        timestamp="2025-04-09T10:07:42Z",
        description="procdump.exe -ma lsass.exe lsass.dmp: credential dumping from LSASS process memory "
        "on WS123",
        rule_id="r-lsass",
        hosts=["WS123"],
        users=["alice"],
        processes=["procdump.exe"],
    ),
    alert(
        "alice logged on to DC1 from WS123",
        source_ref="ir-4",
        timestamp="2025-04-09T10:12:03Z",
        description="Successful network logon (EventID 4624, logon type 3) for alice on DC1 from WS123",
        rule_id="r-dc-logon",
        hosts=["DC1", "WS123"],
        users=["alice"],
    ),
]

CHOICES = {  # which alert the choose prompt is about -> the candidate the "model" picks
    "Multiple failed logon attempts": "T1110",
    "Suspicious PowerShell": "T1059.001",
    "LSASS memory dump": "T1003.001",
    "logged on to DC1": "none",
}


def choose(messages: list[Any], method: str, options: Any) -> str:
    prompt = messages[-1]["content"]
    for marker, tid in CHOICES.items():
        if marker in prompt:
            assert tid in options, f"{tid} is not among the candidates {options}"
            return tid
    raise AssertionError("unexpected choose prompt")


def summary(messages: list[Any], method: str, schema: Any) -> dict[str, Any]:
    return {
        "summary": [
            "Repeated failed logons for alice on WS123 were followed by encoded PowerShell [E1, E2].",
            "LSASS memory was dumped on WS123 and alice then logged on to DC1 from WS123 [E3, E4].",
        ],
        "timeline": [
            "10:00 failed logons for alice on WS123 [E1]",
            "10:05 encoded PowerShell on WS123 [E2]",
            "10:07 LSASS dump with procdump on WS123 [E3]",
            "10:12 alice logs on to DC1 from WS123 [E4]",
        ],
    }


PLAN = {
    "remediation": [
        "Reset the password of alice and revoke her sessions.",
        "Reimage WS123 after collecting a memory image.",
    ],
    "next_steps": ["Review logons to DC1 for other accounts used from WS123."],
}


def rules(summary_reply: Any = summary) -> list[ScriptRule]:
    return [
        ScriptRule(choose, node="map_attack", method="choose"),
        ScriptRule(summary_reply, node="summarize_case", method="generate_structured"),
        ScriptRule(PLAN, node="plan_response", method="generate_structured"),
    ]


@pytest.fixture
def harness(tmp_path: Path) -> WorkflowHarness:
    return WorkflowHarness.create(tmp_path, model=ScriptedModel(rules()))


def report_body(h: WorkflowHarness, case_id: int) -> tuple[str, str]:
    with h.store() as store:
        note = store.get_note(case_id, kind="incident_report")
        assert note is not None
        return store.get_current_revision(note).body, note.status


def test_cookbook_incident_yields_validated_techniques_grouped_by_tactic(db_url: str, tmp_path: Path) -> None:
    harness = WorkflowHarness.create(tmp_path, model=ScriptedModel(rules()), db_url=db_url)  # SQLite + PG
    case_id = harness.cases.case(*INCIDENT, title="Credential theft on WS123")
    paused = harness.run_to_interrupt("incident_report", case_id=case_id)
    state = harness.state(paused.run_id)

    catalog = attack_catalog()
    by_id = {t["technique_id"]: t for t in state["techniques"]}
    assert {"T1110", "T1059.001", "T1003.001"} <= set(by_id)
    for tid in ("T1110", "T1059.001", "T1003.001"):
        tech = catalog.resolve(tid)
        assert by_id[tid]["name"] == tech.name and by_id[tid]["tactics"] == catalog.tactic_names(tech)
    tactics = {g["tactic"]: g["techniques"] for g in state["tactics"]}
    assert set(tactics["Credential Access"]) >= {"T1110", "T1003.001"}
    assert tactics["Execution"] == ["T1059.001"]
    assert [g["tactic"] for g in state["tactics"]] == [
        t.name for t in catalog.tactics if t.name in tactics
    ]  # matrix order

    impacted = state["impacted"]
    assert [h["name"] for h in impacted["hosts"]] == ["DC1", "WS123"]
    assert [u["name"] for u in impacted["users"]] == ["alice"]
    assert state["plan"]["status"] == "valid" and state["summary"]["status"] == "valid"
    assert state["report"]["findings"] == []

    body, status = report_body(harness, case_id)
    assert status == "draft"
    for heading in (
        "## Summary",
        "## Impacted assets and users",
        "## ATT&CK techniques",
        "### Credential Access",
        "### Execution",
        "## Timeline",
        "## Actions taken",
        "## Remediation steps",
        "## Recommended next steps",
        "## Evidence",
    ):
        assert heading in body, heading
    assert "T1003.001 — LSASS Memory" in body and "T1110 — Brute Force" in body
    # every citation in the report names an evidence item listed in it
    groups = re.findall(r"\[(E\d+(?:, E\d+)*)\]", body)
    cited = {int(n) for group in groups for n in re.findall(r"\d+", group)}
    assert cited and max(cited) <= len(state["evidence_ids"])
    assert paused.interrupt is not None and paused.interrupt["kind"] == "incident_report"

    done = harness.resume(paused.run_id, "approve", user="ana", expect=RunStatus.completed)
    assert harness.state(done.run_id)["outcome"] == "approved"
    assert report_body(harness, case_id)[1] == "approved"
    with harness.store() as store:
        assert {t.technique_id for t in store.list_techniques(case_id)} >= {"T1110", "T1059.001", "T1003.001"}


def test_summary_citing_missing_evidence_is_redrafted_then_falls_back(tmp_path: Path) -> None:
    bad = {"summary": ["Something happened [E99]."], "timeline": ["It happened [E1]."]}
    model = ScriptedModel(rules(summary_reply=bad))
    h = WorkflowHarness.create(tmp_path, model=model)
    case_id = h.cases.case(*INCIDENT)
    paused = h.run_to_interrupt("incident_report", case_id=case_id)
    asks = [c for c in model.calls if c.node == "summarize_case"]
    assert len(asks) == 2 and "[E99] is not an evidence item" in asks[1].prompt
    state = h.state(paused.run_id)
    assert state["summary"]["status"] == "fallback" and state["report"]["findings"] == []
    body, _ = report_body(h, case_id)
    assert "PARTLY FALLBACK" in body and "[E99]" not in body


def test_reject_redrafts_once_with_the_reason_then_waits_for_a_manual_report(
    harness: WorkflowHarness,
) -> None:
    case_id = harness.cases.case(*INCIDENT)
    paused = harness.run_to_interrupt("incident_report", case_id=case_id)
    again = harness.resume(
        paused.run_id, "reject", reason="name the source host", expect=RunStatus.awaiting_input
    )
    model = harness.model
    asks = [c for c in model.calls if c.node == "summarize_case"]
    assert len(asks) == 2 and "name the source host" in asks[1].prompt
    manual = harness.resume(again.run_id, "reject", reason="still wrong", expect=RunStatus.awaiting_input)
    assert manual.interrupt is not None and manual.interrupt["allowed_actions"] == ["edit", "escalate"]
    done = harness.resume(manual.run_id, "edit", body="# Incident report\n\nWritten by hand [E1].")
    assert done.status is RunStatus.completed
    body, status = report_body(harness, case_id)
    assert status == "approved" and "Written by hand" in body
