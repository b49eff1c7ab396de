"""Vendor formats onto the generic alert format: one test per mapping, severity maps pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from socflow.errors import InputError
from socflow.normalize import (
    detect_format,
    get_path,
    make_normalizer,
    risk_score_severity,
    to_generic,
    to_iso,
    wazuh_severity,
)
from socflow.schemas import AlertIn

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    text = (FIXTURES / name).read_text()
    if name.endswith(".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def validated(item: dict[str, Any], **kwargs: Any) -> AlertIn:
    return AlertIn.model_validate(to_generic(item, **kwargs))


# -- Splunk ES notables ------------------------------------------------------------------------------
def test_splunk_notable() -> None:
    item = load("splunk_notable.json")
    assert detect_format(item) == "splunk_notable"
    alert = validated(item)
    assert alert.source == "splunk-es"
    assert alert.source_ref == item["event_id"]
    assert alert.title == "Encoded PowerShell command on WS123 by alice"
    assert alert.severity == "high"  # urgency wins over severity
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2025-04-09T10:05:10+00:00"
    assert alert.description is not None and alert.description.startswith("Identifies use of")
    assert alert.rule.id == "Endpoint - Malicious PowerShell Process - Encoded Command - Rule"
    assert alert.rule.name == "Malicious PowerShell Process - Encoded Command"
    assert alert.rule.tags == ["attack.t1059.001", "attack.t1027"]
    assert alert.entities.hosts == ["WS123"]
    assert alert.entities.ips == ["10.0.0.5"]
    assert alert.entities.users == ["alice"]
    assert alert.entities.processes == ["powershell.exe", "explorer.exe"]
    assert alert.raw == item


def test_splunk_export_lines_multivalue_and_epoch() -> None:
    first, second = load("splunk_export.ndjson")
    assert detect_format(first) == "splunk_notable"
    alert = validated(first)
    assert alert.source_ref == "A11D0B55-0000-4000-8000-000000000001@@notable@@0001"
    assert alert.severity == "critical"
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2024-04-09T10:05:10+00:00"
    assert alert.entities.hosts == ["DC01"]
    assert alert.entities.ips == ["203.0.113.9", "10.0.0.10"]
    assert alert.entities.users == ["svc_backup", "administrator"]
    assert alert.rule.tags == ["attack.t1110.001", "attack.credential-access"]
    other = validated(second, source="splunk-prod")
    assert other.source == "splunk-prod"
    assert other.severity == "informational"
    assert other.title == "Network - Unusual Volume of Network Activity - Rule"
    assert other.entities.hosts == ["files.example.org"]


@pytest.mark.parametrize(
    ("urgency", "expected"),
    [
        ("informational", "informational"),
        ("low", "low"),
        ("medium", "medium"),
        ("High", "high"),
        ("critical", "critical"),
        (None, "medium"),
    ],
)
def test_splunk_urgency_map(urgency: str | None, expected: str) -> None:
    item = {"search_name": "X - Rule", "event_id": "e1", "_time": "1712657110"}
    if urgency:
        item["urgency"] = urgency
    assert to_generic(item)["severity"] == expected


# -- Elastic Security --------------------------------------------------------------------------------
def test_elastic_search_hit() -> None:
    hit = load("elastic_alert.json")
    assert detect_format(hit) == "elastic"
    alert = validated(hit)
    doc = hit["_source"]
    assert alert.source == "elastic-security"
    assert alert.source_ref == doc["kibana.alert.uuid"]
    assert alert.title == "LSASS Memory Dump via comsvcs"
    assert alert.severity == "critical"
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2025-04-09T10:07:44.512000+00:00"
    assert alert.description == doc["kibana.alert.reason"]
    assert alert.rule.id == "00140285-b827-4aee-aa09-8113f58a08f3"
    assert alert.rule.tags == ["attack.credential-access", "attack.t1003", "attack.t1003.001"]
    assert alert.entities.hosts == ["WS123", "ws123.corp.example.com"]
    assert alert.entities.users == ["alice"]
    assert alert.entities.ips == ["10.0.0.5", "10.0.0.10"]
    assert alert.entities.processes == ["rundll32.exe", "powershell.exe"]
    assert alert.entities.hashes == [
        "9e107d9d372bb6826bd81d3542a419d6",
        "4f2b8d0c8b0a7e7f6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b",
    ]
    assert alert.raw == hit


def test_elastic_nested_document_severity_from_risk_score() -> None:
    doc = load("elastic_risk_only.json")
    assert detect_format(doc) == "elastic"
    alert = validated(doc)
    assert alert.severity == "medium"  # risk_score 47, no severity word
    assert alert.source_ref == "a0b1c2d3e4f5"
    assert alert.rule.id == "52aaab7b-b51c-441a-89ce-4387b3aea886"
    assert alert.rule.tags == ["attack.defense-evasion", "attack.t1218", "attack.t1218.011"]
    assert alert.entities.hosts == ["WS200"]
    assert alert.entities.users == ["bob"]
    assert alert.entities.ips == ["198.51.100.23"]
    assert alert.entities.domains == ["update.evil.example"]


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        *[(0, "low"), (21, "low"), (22, "medium"), (47, "medium"), (48, "high"), (73, "high")],
        *[(74, "critical"), (100, "critical"), ("x", "medium")],
    ],
)
def test_elastic_risk_score_ranges(score: Any, expected: str) -> None:
    assert risk_score_severity(score) == expected


def test_elastic_severity_word_beats_risk_score() -> None:
    doc: dict[str, Any] = {
        "kibana.alert.uuid": "u",
        "kibana.alert.rule.name": "R",
        "kibana.alert.severity": "low",
    }
    doc["kibana.alert.risk_score"] = 99
    assert to_generic(doc)["severity"] == "low"


# -- Wazuh -------------------------------------------------------------------------------------------
def test_wazuh_alerts() -> None:
    ssh, sysmon, pam, fim = load_ndjson("wazuh_alerts.json")
    assert detect_format(ssh) == "wazuh"
    alert = validated(ssh)
    assert alert.source == "wazuh"
    assert alert.source_ref == "1580123327.49031"
    assert alert.title == "sshd: brute force trying to get access to the system. Non existent user."
    assert alert.severity == "high"  # level 10
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2020-01-27T11:08:47.777000+00:00"
    assert alert.description == ssh["full_log"]
    assert alert.rule.id == "5712"
    assert alert.rule.tags == ["attack.credential-access", "attack.t1110"]
    assert alert.entities.hosts == ["ubuntu-agent"]
    assert alert.entities.ips == ["10.0.2.15", "192.168.1.100"]
    assert alert.entities.users == ["admin"]

    s = validated(sysmon)
    assert s.severity == "critical"  # level 13
    assert s.rule.tags == ["attack.execution", "attack.t1059.001"]
    assert s.entities.processes == ["powershell.exe", "explorer.exe"]
    assert s.entities.users == ["alice"]
    assert s.entities.hashes == ["4f2b8d0c8b0a7e7f6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"]
    assert s.description == s.title  # no full_log: the rule description

    p = validated(pam)
    assert p.severity == "informational"  # level 3
    assert p.entities.users == ["bob"]
    assert p.rule.tags == []

    f = validated(fim)
    assert f.severity == "critical"  # level 15
    assert f.entities.hashes == [
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ]
    assert f.entities.users == ["root"]


def load_ndjson(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        *[(0, "informational"), (3, "informational"), (4, "low"), (6, "low"), (7, "medium"), (9, "medium")],
        *[(10, "high"), (12, "high"), (13, "critical"), (15, "critical"), ("12", "high"), (None, "medium")],
    ],
)
def test_wazuh_level_ranges(level: Any, expected: str) -> None:
    assert wazuh_severity(level) == expected


# -- cookbook, generic, sigma ------------------------------------------------------------------------
def test_cookbook_alerts() -> None:
    brute, lsass = load("cookbook_alerts.json")
    assert detect_format(brute) == "cookbook"
    alert = validated(brute)
    assert alert.source == "cookbook"
    assert alert.source_ref == "6f1c3a9e-2b7d-4c1e-9a8f-0d3e5b7c9a11"
    assert alert.title == "Multiple failed login attempts for user alice from 203.0.113.7"
    assert alert.severity == "medium"  # the shape has no severity: the documented default
    assert alert.rule.id == "4625"
    assert alert.entities.users == ["alice"]
    assert alert.entities.ips == ["203.0.113.7", "10.0.0.5"]
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2025-04-09T10:01:12+00:00"
    assert validated(lsass).severity == "critical"


def test_generic_passes_through_unchanged() -> None:
    item = {
        "source": "edr",
        "source_ref": "r-1",
        "title": "PowerShell",
        "severity": "high",
        "entities": {"hosts": ["WS1"]},
        "raw": {"x": 1},
    }
    assert detect_format(item) == "generic"
    assert to_generic(item) == item
    assert to_generic(item) is not item


def test_sigma_hit_keeps_its_source_and_tags() -> None:
    item = {
        "source": "socflow-sigma",
        "source_ref": "sigma-abc",
        "title": "Encoded PowerShell",
        "severity": "high",
        "rule": {"id": "r1", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": ["WS123"]},
        "raw": {"event_count": 1},
    }
    assert detect_format(item) == "sigma_hit"
    alert = validated(item)
    assert alert.source == "socflow-sigma"
    assert alert.rule.tags == ["attack.t1059.001"]
    no_source = {k: v for k, v in item.items() if k != "source"}
    assert to_generic(no_source, fmt="sigma_hit")["source"] == "socflow-sigma"


# -- custom ------------------------------------------------------------------------------------------
FIELD_MAP = {
    "title": "alert.name",
    "severity": "alert.prio",
    "source_ref": "alert.id",
    "timestamp": "ts",
    "hosts": "device.hostname",
    "ips": "device.ip",
    "users": "actor.login",
    "domains": "ioc.domain",
    "tags": "alert.technique",
}


def test_custom_field_map() -> None:
    item = load("custom_alert.json")
    with pytest.raises(InputError) as info:
        detect_format(item)
    assert info.value.field == "format"
    alert = validated(item, field_map=FIELD_MAP, source="nx-edr")
    assert alert.source == "nx-edr"
    assert alert.source_ref == "NX-77812"
    assert alert.title == "Beacon to known C2 domain"
    assert alert.severity == "high"
    assert alert.timestamp is not None and alert.timestamp.isoformat() == "2025-04-09T10:10:00+00:00"
    assert alert.entities.hosts == ["WS777"]
    assert alert.entities.ips == ["10.0.7.7"]
    assert alert.entities.users == ["carol"]
    assert alert.entities.domains == ["c2.evil.example"]
    assert alert.rule.tags == ["attack.t1071.001"]
    assert alert.raw == item


def test_custom_source_from_the_map_and_unknown_severity_left_for_the_schema() -> None:
    item = {"a": {"n": "X", "s": "sev9", "src": "box"}}
    out = to_generic(item, fmt="custom", field_map={"title": "a.n", "severity": "a.s", "source": "a.src"})
    assert out["source"] == "box"
    assert out["severity"] == "sev9"  # not guessed: AlertIn refuses it with field "severity"


def test_custom_unknown_key_and_missing_map() -> None:
    with pytest.raises(InputError) as info:
        to_generic({"a": 1}, fmt="custom", field_map={"titel": "a"})
    assert info.value.field == "field_map" and "titel" in info.value.reason
    with pytest.raises(InputError):
        to_generic({"a": 1}, fmt="custom")


def test_unknown_shape_names_what_was_expected() -> None:
    with pytest.raises(InputError) as info:
        to_generic({"foo": "bar"})
    assert "splunk_notable looks for" in info.value.reason and "field_map" in info.value.reason
    with pytest.raises(InputError):
        to_generic({"foo": "bar"}, fmt="qradar")
    with pytest.raises(InputError):
        to_generic(["not", "an", "object"])  # type: ignore[arg-type]


# -- helpers -----------------------------------------------------------------------------------------
def test_get_path_nested_flat_and_mixed() -> None:
    doc = {"a": {"b.c": {"d": 1}}, "x.y": [{"z": 2}], "k": {"l": None}, "k.l": 3}
    assert get_path(doc, "a.b.c.d") == 1
    assert get_path(doc, "x.y.0.z") == 2
    assert get_path(doc, "k.l") == 3
    assert get_path(doc, "nope.nothing") is None


def test_to_iso_forms() -> None:
    assert to_iso(1744193400) == "2025-04-09T10:10:00+00:00"
    assert to_iso(1744193400000) == "2025-04-09T10:10:00+00:00"
    assert to_iso("2025-04-09T10:10:00Z") == "2025-04-09T10:10:00+00:00"
    assert to_iso("2025-04-09T10:10:00") == "2025-04-09T10:10:00+00:00"
    assert to_iso("yesterday") == "yesterday"
    assert to_iso(None) is None


def test_long_vendor_text_is_bounded_not_refused() -> None:
    item = {"search_name": "x" * 2000, "event_id": "e", "description": "y" * 200_000}
    alert = validated(item)
    assert len(alert.title) == 500
    assert alert.description is not None and alert.description.endswith("[truncated]")


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_normalizing_twice_changes_nothing(name: str) -> None:
    """Connectors normalize and the ingest service's normalizer runs again: the second pass is a no-op."""
    try:
        docs = load(name)
    except json.JSONDecodeError:  # wazuh_alerts.json is one alert per line, as Wazuh writes it
        docs = load_ndjson(name)
    for doc in docs if isinstance(docs, list) else [docs]:
        once = to_generic(doc, field_map=FIELD_MAP, source="s")
        assert to_generic(once, field_map=FIELD_MAP) == once
        assert make_normalizer(field_map=FIELD_MAP, source="s")(doc) == once


def test_make_normalizer_refuses_an_unknown_format() -> None:
    with pytest.raises(InputError):
        make_normalizer(fmt="qradar")
