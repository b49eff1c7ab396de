"""Case export (issue 21): JSON, Markdown and a STIX 2.1 bundle from the CLI, the API and the web UI; the
bundle parses with ``stix2.parse`` and round-trips the case's observables and ATT&CK techniques."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from socflow.auth import Role
from socflow.cli import app
from socflow.runner import RunStatus
from socflow.settings import Settings
from socflow.store import CaseStore
from tests.api.conftest import bearer, make_token
from tests.web.helpers import login, make_web_app, web_settings
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ALERT = {
    "source": "test",
    "source_ref": "export-1",
    "title": "Encoded PowerShell <b>from</b> a [macro](javascript:x) | #1",
    "severity": "high",
    "description": "powershell -enc ... beacon to c2.bad-domain.example",
    "rule": {"id": "r-ps", "name": "Encoded PowerShell", "tags": ["attack.t1059.001", "attack.t1071.001"]},
    "entities": {
        "hosts": ["WS42"],
        "users": ["alice"],
        "ips": ["203.0.113.9", "2001:db8::7"],
        "hashes": [SHA256],
        "urls": ["http://c2.bad-domain.example/gate.php"],
        "processes": ["powershell.exe"],
        "emails": ["phish@sender.example"],
    },
}
cli = CliRunner()


@pytest.fixture
def triaged(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, int]:
    """A case triaged by alert_triage (scripted model) up to its drafted note."""
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    settings = web_settings(sqlite_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    runner = make_runner(settings, scripted())
    result = runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    assert result.status is RunStatus.awaiting_input, runner.get(result.run_id).error
    return settings, case_id


def _expected(settings: Settings, case_id: int) -> tuple[set[tuple[str, str]], set[str], str]:
    runner = make_runner(settings, scripted())
    with runner.factory() as session:
        store = CaseStore(session)
        observables = {(o.type, o.value) for o in store.list_observables(case_id=case_id)}
        techniques = {t.technique_id for t in store.list_techniques(case_id)}
        note = store.get_note(case_id)
        assert note is not None
        body = store.get_current_revision(note).body
    return observables, techniques, body


def _read_back(bundle: Any) -> tuple[set[tuple[str, str]], set[str], list[Any]]:
    """Observables and techniques of a parsed bundle, mapped back to socflow's types."""
    observables: set[tuple[str, str]] = set()
    techniques: set[str] = set()
    by_type: dict[str, str] = {
        "ipv4-addr": "ip",
        "ipv6-addr": "ip",
        "domain-name": "domain",
        "url": "url",
        "email-addr": "email",
    }
    for obj in bundle.objects:
        if obj.type in by_type:
            observables.add((by_type[obj.type], obj.value))
        elif obj.type == "file":
            observables.update(("hash", v) for v in obj.hashes.values())
        elif obj.type == "infrastructure":
            observables.add(("host", obj.name))
        elif obj.type == "user-account":
            observables.add(("user", obj.user_id))
        elif obj.type == "process":
            observables.add(("process", obj.command_line))
        elif obj.type == "attack-pattern":
            refs = [r for r in obj.external_references if r.source_name == "mitre-attack"]
            techniques.update(r.external_id for r in refs)
    notes = [o for o in bundle.objects if o.type == "note"]
    return observables, techniques, notes


def test_cli_stix_bundle_round_trips_observables_and_techniques(
    triaged: tuple[Settings, int], tmp_path: Path
) -> None:
    settings, case_id = triaged
    observables, techniques, body = _expected(settings, case_id)
    assert len(observables) >= 9 and techniques  # every observable type and at least one technique
    out = tmp_path / "case.stix.json"
    result = cli.invoke(app, ["cases", "export", str(case_id), "--format", "stix", "--output", str(out)])
    assert result.exit_code == 0, result.output
    bundle = stix2.parse(out.read_text(encoding="utf-8"))
    assert bundle.type == "bundle"
    got_observables, got_techniques, notes = _read_back(bundle)
    assert got_observables == observables
    assert got_techniques == techniques
    report = next(o for o in bundle.objects if o.type == "report")
    refs = set(report.object_refs)
    assert {o.id for o in bundle.objects if o.type not in {"report", "note", "identity"}} == refs
    assert len(notes) == 1 and notes[0].content == body and report.id in notes[0].object_refs
    for pattern in (o for o in bundle.objects if o.type == "attack-pattern"):
        assert pattern.kill_chain_phases[0].kill_chain_name == "mitre-attack"
    # A re-export names the same objects (deterministic ids).
    again = stix2.parse(cli.invoke(app, ["cases", "export", str(case_id), "--format", "stix"]).stdout)
    stable = {o.id for o in bundle.objects if o.type != "process"}  # STIX gives process no id parts
    assert stable <= {o.id for o in again.objects}


def test_cli_json_and_markdown(triaged: tuple[Settings, int]) -> None:
    settings, case_id = triaged
    observables, techniques, body = _expected(settings, case_id)
    doc = json.loads(cli.invoke(app, ["cases", "export", str(case_id)]).stdout)
    assert doc["format"] == "socflow-case-export" and doc["case"]["id"] == case_id
    assert {(o["type"], o["value"]) for o in doc["observables"]} == observables
    assert {t["technique_id"] for t in doc["techniques"]} == techniques
    assert doc["notes"][0]["body"] == body and doc["notes"][0]["status"] == "draft"
    md = cli.invoke(app, ["cases", "export", str(case_id), "--format", "markdown"]).stdout
    assert md.startswith(f"# Case {case_id}: Encoded PowerShell \\<b\\>from\\</b\\> a \\[macro\\]")
    assert body.rstrip() in md  # the note verbatim
    assert all(t in md for t in techniques) and f"- hash: `{SHA256}`" in md
    missing = cli.invoke(app, ["cases", "export", "999999"])
    assert missing.exit_code == 1 and "999999" in missing.output


def test_api_export_is_for_analysts(triaged: tuple[Settings, int]) -> None:
    settings, case_id = triaged
    observables, techniques, _ = _expected(settings, case_id)
    analyst = make_token(settings.database.url, Role.analyst)
    engineer = make_token(settings.database.url, Role.engineer)
    with TestClient(make_web_app(settings)) as client:
        url = f"/api/v1/cases/{case_id}/export"
        stix = client.get(f"{url}?format=stix", headers=bearer(analyst))
        assert stix.status_code == 200 and stix.headers["content-type"].startswith("application/stix+json")
        assert f'filename="case-{case_id}.stix.json"' in stix.headers["content-disposition"]
        assert _read_back(stix2.parse(stix.text))[:2] == (observables, techniques)
        md = client.get(f"{url}?format=markdown", headers=bearer(analyst))
        assert md.headers["content-type"].startswith("text/markdown") and md.text.startswith("# Case")
        assert client.get(url, headers=bearer(analyst)).json()["case"]["id"] == case_id
        assert client.get(f"{url}?format=xml", headers=bearer(analyst)).status_code == 422
        assert client.get(url, headers=bearer(engineer)).status_code == 403
        assert client.get("/api/v1/cases/999999/export", headers=bearer(analyst)).status_code == 404


def test_case_page_links_downloads(triaged: tuple[Settings, int]) -> None:
    settings, case_id = triaged
    with TestClient(make_web_app(settings)) as client:
        login(client, make_token(settings.database.url, Role.analyst))
        page = client.get(f"/cases/{case_id}").text
        for fmt in ("json", "markdown", "stix"):
            assert f'href="/cases/{case_id}/export?format={fmt}" download' in page
        download = client.get(f"/cases/{case_id}/export?format=stix")
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        assert stix2.parse(download.text).type == "bundle"
        assert client.get(f"/cases/{case_id}/export?format=xml").status_code == 400
