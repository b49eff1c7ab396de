"""Acceptance (issue 21): a STIX 2.1 bundle and a MISP event file loaded with ``socflow intel load``, then
an alert about listed IPs: alert_triage (scripted model) stores cited threat-intel evidence, the model
sees it, the drafted note cites it, and the policy's intel_match rule raises the case's priority."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from socflow.cli import app
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.runner import RunStatus
from socflow.settings import Settings
from socflow.store import CaseStore
from tests.workflows.triage_helpers import first_candidate, ingest_one, make_runner, settings_for

DATA = Path(__file__).parent / "data"
STIX_IP = "203.0.113.77"  # an indicator of the STIX bundle (confidence 85)
MISP_IP = "192.0.2.66"  # a to_ids attribute of the MISP event (threat level high: 90)
POLICY = """
raise_priority:
  - when: intel_match
    min_intel_confidence: 80
    priority: critical
auto_close:
  - source: test
    verdicts: [false_positive]
    max_severity: high
    min_confidence: 0.5
    rules: [r-beacon]
"""
cli = CliRunner()


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return settings_for(sqlite_url, tmp_path, policy={"file": policy})


def _load(*args: str) -> dict[str, Any]:
    result = cli.invoke(app, ["intel", "load", *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _intel_label(messages: Any) -> str:
    """The evidence label ([E<n>]) the note prompt gives the threat-intel item about STIX_IP."""
    text = "\n".join(m["content"] for m in messages)
    found = re.search(r"\[(E\d+)\][^\n]*Threat intel: the ip " + re.escape(STIX_IP), text)
    assert found, "the threat-intel item is not in the note prompt"
    return found.group(1)


def _model(verdict: str = "true_positive") -> ScriptedModel:
    def note(messages: Any, method: str, schema: Any) -> dict[str, Any]:
        label = _intel_label(messages)
        return {
            "summary": [f"The address {STIX_IP} is a known threat-intel indicator [{label}]."],
            "impacted": [f"The host that talked to {STIX_IP} [{label}]."],
            "timeline": [f"Traffic to {STIX_IP} was alerted on [{label}]."],
            "next_steps": ["Block the address and review the host."],
        }

    return ScriptedModel(
        [
            ScriptRule(first_candidate, node="map_attack", method="choose"),
            ScriptRule(
                {
                    "verdict": verdict,
                    "priority": "medium",
                    "rationale": "Known C2 address.",
                    "evidence": ["E1"],
                },
                node="assess_case",
                method="generate_structured",
            ),
            ScriptRule(
                {"true_positive": 0.1, "benign_positive": 0.1, "false_positive": 0.1} | {verdict: 0.9},
                node="assess_case",
                method="score_labels",
            ),
            ScriptRule(note, node="draft_note", method="generate_structured"),
        ]
    )


def _alert(ref: str, ips: list[str]) -> dict[str, Any]:
    return {
        "source": "test",
        "source_ref": ref,
        "title": "Outbound beacon to a rare address",
        "severity": "medium",
        "rule": {"id": "r-beacon", "name": "Rare outbound beacon", "tags": ["attack.t1071.001"]},
        "entities": {"hosts": ["WS7"], "ips": ips},
    }


def test_loaded_feeds_become_cited_evidence_on_a_triaged_case(settings: Settings) -> None:
    stix = _load(str(DATA / "bundle.json"), "--source", "example-cert")
    misp = _load(str(DATA / "misp_event.json"), "--format", "misp", "--source", "misp-feed")
    assert (stix["format"], stix["added"]) == ("stix", 7)
    assert (misp["format"], misp["added"]) == ("misp", 5)
    matched = cli.invoke(app, ["intel", "match", STIX_IP, "unlisted.example", "--json"])
    assert matched.exit_code == 0
    assert [(m["value"], m["source"]) for m in json.loads(matched.stdout)["matches"]] == [
        (STIX_IP, "example-cert")
    ]

    case_id = ingest_one(settings, _alert("intel-1", [STIX_IP, MISP_IP, "10.1.2.3"]))
    model = _model()
    runner = make_runner(settings, model)
    result = runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    assert result.status is RunStatus.awaiting_input, runner.get(result.run_id).error

    with runner.factory() as session:
        store = CaseStore(session)
        intel = {e.data["value"]: e for e in store.list_evidence(case_id) if e.kind == "threat_intel"}
        assert set(intel) == {STIX_IP, MISP_IP}  # 10.1.2.3 is in no feed
        stix_item = intel[STIX_IP]
        assert stix_item.data["sources"] == ["example-cert"] and stix_item.data["max_confidence"] == 85
        assert stix_item.source_event_id == "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
        assert "Cobalt Strike team server" in stix_item.summary
        assert intel[MISP_IP].data["max_confidence"] == 90
        note = store.get_note(case_id)
        assert note is not None
        body = store.get_current_revision(note).body
        case = store.get_case(case_id)
        audit = [a.data for a in store.list_audit(case_id=case_id, action="case.assessed")]
    # The model saw the item when assessing, and the valid (not fallback) note cites it.
    assess_prompts = [c.prompt for c in model.calls if c.node == "assess_case"]
    assert any(f"Threat intel: the ip {STIX_IP}" in p for p in assess_prompts)
    evidence_line = next(line for line in body.splitlines() if stix_item.evidence_id in line)
    label = re.match(r"- \[(E\d+)\]", evidence_line)
    assert label and f"[{label.group(1)}]" in body.split("## Evidence")[0]
    assert (
        runner.registry.get("alert_triage").read_state(runner.db_url, result.run_id)["draft"]["status"]
        == "valid"
    )
    # Policy: the best match (90 >= 80) lifts the model's "medium" to critical, audited with the reason.
    assert case.priority == "critical"
    assert audit[-1]["priority"] == "critical" and "raise_priority rule 0" in audit[-1]["rationale"]


def test_an_intel_match_never_auto_closes(settings: Settings) -> None:
    _load(str(DATA / "bundle.json"), "--source", "example-cert")
    clean = ingest_one(settings, _alert("intel-clean", ["10.1.2.3"]))
    listed = ingest_one(settings, _alert("intel-listed", [STIX_IP]))
    runner = make_runner(settings, _model("false_positive"))
    done = runner.advance(runner.start("alert_triage", case_id=clean, actor="test"))
    assert done.status is RunStatus.completed  # the allow-listed false positive auto-closes...
    held = runner.advance(runner.start("alert_triage", case_id=listed, actor="test"))
    assert held.status is RunStatus.awaiting_input  # ...unless an observable is a known indicator
    state = runner.registry.get("alert_triage").read_state(runner.db_url, held.run_id)
    assert "matched a threat-intel indicator" in state["policy"]["reason"]


def test_intel_list_and_a_refused_file(settings: Settings, tmp_path: Path) -> None:
    _load(str(DATA / "indicators.csv"), "--source", "lists")
    listed = cli.invoke(app, ["intel", "list", "--type", "hash", "--json"])
    assert listed.exit_code == 0
    items = json.loads(listed.stdout)["items"]
    assert [(i["value"], i["confidence"]) for i in items] == [("44d88612fea8a8f36de82e1278abb02f", 100)]
    again = _load(str(DATA / "indicators.csv"), "--source", "lists")
    assert (again["added"], again["updated"]) == (0, 3)  # loading again updates, stores nothing twice
    bad = tmp_path / "bad.csv"
    bad.write_text("ip\n1.2.3.4\n")
    refused = cli.invoke(app, ["intel", "load", str(bad)])
    assert refused.exit_code == 2 and "value and type" in refused.output
    assert cli.invoke(app, ["intel", "match", "198.18.0.1"]).exit_code == 1
