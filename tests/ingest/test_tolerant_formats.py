"""Vendor alerts missing an optional field are still recognised by their other marks and mapped with the
documented default; a refused payload says which marks were looked for and which were missing; a token or a
request can force the format (issue 17, vendor tolerance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socflow.errors import InputError
from socflow.normalize import detect_format, to_generic
from socflow.schemas import AlertIn

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("fixture", "fmt", "severity", "title"),
    [
        ("wazuh_no_level.json", "wazuh", "medium", "Windows logon failure"),
        ("elastic_no_risk_score.json", "elastic", "medium", "Suspicious Certutil Download"),
        ("splunk_no_urgency.json", "splunk_notable", "medium", "Brute Force Access Behavior Detected"),
    ],
)
def test_a_missing_optional_field_takes_the_documented_default(
    fixture: str, fmt: str, severity: str, title: str
) -> None:
    item = load(fixture)
    assert detect_format(item) == fmt
    alert = AlertIn.model_validate(to_generic(item))
    assert alert.severity.value == severity and alert.title == title


def test_a_refused_payload_names_the_marks_looked_for_and_missing() -> None:
    with pytest.raises(InputError) as caught:
        detect_format(load("unknown_vendor.json"))
    reason = caught.value.reason
    assert "wazuh looks for rule.{level|description|id}" in reason
    assert "generic looks for source, title, severity (missing: source, title, severity)" in reason
    assert "splunk_notable" in reason and "elastic" in reason
