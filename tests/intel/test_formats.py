"""Feed files in real formats (STIX 2.1, MISP event JSON and feed folders, CSV) and their bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socflow.errors import InputError
from tools.intel import formats
from tools.intel.formats import detect_format, parse_csv, parse_file, parse_stix
from tools.intel.indicators import IndicatorIn, IndicatorType, guess_type, normalize

DATA = Path(__file__).parent / "data"


def _pairs(report: formats.ParseReport) -> set[tuple[str, str]]:
    return {(kind, value) for kind, value, _ in report.indicators}


def _one(report: formats.ParseReport, kind: str, value: str) -> IndicatorIn:
    (found,) = [i for (k, v, _), i in report.indicators.items() if (k, v) == (kind, value)]
    return found


def test_stix_bundle_indicators_and_observables() -> None:
    report = parse_file(DATA / "bundle.json", "auto", source="cert")
    assert report.format == "stix"
    assert _pairs(report) == {
        ("ip", "203.0.113.77"),
        ("domain", "login-micr0soft.example"),
        ("url", "http://login-micr0soft.example/owa"),
        ("hash", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("hash", "d41d8cd98f00b204e9800998ecf8427e"),
        ("ip", "198.51.100.23"),  # an ipv4-addr observable
        ("domain", "update-check.example.net"),  # a domain-name observable, normalized
    }
    c2 = _one(report, "ip", "203.0.113.77")
    assert c2.confidence == 85 and c2.source == "cert"
    assert c2.external_id == "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    assert c2.description == "Cobalt Strike team server - C2 server seen in the April campaign"
    assert set(c2.tags) == {"c2", "malicious-activity"}
    # A sigma-typed indicator and a malformed pattern are skipped with a reason, never stored.
    assert report.skipped == 2
    assert any("pattern_type sigma" in r for r in report.reasons)
    assert not any(v == "198.51.100.1" for _, v, _ in report.indicators)


def test_stix_only_equality_comparisons_count() -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56e",
        "objects": [
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd40",
                "created": "2024-05-01T10:00:00.000Z",
                "modified": "2024-05-01T10:00:00.000Z",
                "pattern": "[ipv4-addr:value != '10.1.1.1'] OR [ipv4-addr:value = '10.9.9.9']"
                " OR [ipv4-addr:value = '10.0.0.0/8']",
                "pattern_type": "stix",
                "valid_from": "2024-05-01T10:00:00Z",
            },
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd41",
                "created": "2024-05-01T10:00:00.000Z",
                "modified": "2024-05-02T10:00:00.000Z",
                "pattern": "[ipv4-addr:value = '10.7.7.7']",
                "pattern_type": "stix",
                "valid_from": "2024-05-01T10:00:00Z",
                "revoked": True,
            },
        ],
    }
    report = parse_stix(bundle, source="s")
    assert _pairs(report) == {("ip", "10.9.9.9")}  # != is not a match; a CIDR is not an address
    assert report.skipped == 2 and any("revoked" in r for r in report.reasons)


def test_misp_event_to_ids_attributes_and_objects() -> None:
    report = parse_file(DATA / "misp_event.json", "auto", source="misp-feed")
    assert report.format == "misp"
    assert _pairs(report) == {
        ("ip", "192.0.2.66"),
        ("domain", "files.bad-cdn.example"),
        ("ip", "192.0.2.67"),
        ("hash", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ("email", "billing@invoices-now.example"),
    }
    rdp = _one(report, "ip", "192.0.2.66")
    assert rdp.confidence == 90  # threat level 1 (high)
    assert rdp.description == "Ransomware operator infrastructure - RDP brute-force source"
    assert "tlp:amber" in rdp.tags and "misp:Network activity" in rdp.tags
    assert "phishing" in _one(report, "email", "billing@invoices-now.example").tags
    # to_ids false, an invalid IP and an unsupported type are skipped.
    assert report.skipped == 3
    assert ("ip", "192.0.2.99") not in report.indicators


def test_misp_feed_folder_with_manifest_ignores_path_entries() -> None:
    report = parse_file(DATA / "misp-feed", "auto", source="feed")
    assert report.format == "misp"
    assert _pairs(report) == {("ip", "2001:db8::dead:beef"), ("url", "https://scan.example.org/probe?id=1")}
    assert _one(report, "url", "https://scan.example.org/probe?id=1").confidence == 30
    assert any("not an event uuid" in r for r in report.reasons)


def test_csv_with_header() -> None:
    report = parse_file(DATA / "indicators.csv", "auto", source="lists")
    assert report.format == "csv"
    assert _pairs(report) == {
        ("ip", "203.0.113.5"),
        ("domain", "evil-updates.example"),
        ("hash", "44d88612fea8a8f36de82e1278abb02f"),
    }
    assert _one(report, "ip", "203.0.113.5").source == "abuse-list"  # the row's source column
    assert _one(report, "domain", "evil-updates.example").source == "lists"  # else --source
    assert _one(report, "ip", "203.0.113.5").tags == ["scanner", "ssh"]
    assert report.skipped == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [("ip,kind\n1.2.3.4,ip\n", "header"), ("", "header")],
)
def test_csv_without_the_columns_is_refused(text: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        parse_csv(text, source="s")
    assert info.value.field == why


def test_hostile_files_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"type": "bundle", "objects": []}) + " " * 2048)
    monkeypatch.setattr(formats, "MAX_FILE_BYTES", 1024)
    with pytest.raises(InputError, match="over the 1024-byte limit"):
        parse_file(big, "stix", source="s")
    monkeypatch.setattr(formats, "MAX_INDICATORS", 2)
    many = "value,type\n" + "".join(f"10.0.0.{i},ip\n" for i in range(10))
    report = parse_csv(many, source="s")
    assert len(report.indicators) == 2 and report.truncated
    long_desc = "value,type,description\n10.0.0.1,ip," + "A\x00" * 5000 + "\n"
    item = _one(parse_csv(long_desc, source="s"), "ip", "10.0.0.1")
    assert item.description is not None and len(item.description) == 500 and "\x00" not in item.description
    with pytest.raises(InputError, match="not JSON"):
        (tmp_path / "x.json").write_text("{nope")
        parse_file(tmp_path / "x.json", "auto", source="s")
    with pytest.raises(InputError, match=r"not a STIX 2\.1 bundle"):
        parse_stix({"type": "bundle", "objects": "no"}, source="s")


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match="nested too deeply"):
        parse_file(tmp_path / "deep.json", "misp", source="s")


def test_detect_format_and_type_guessing(tmp_path: Path) -> None:
    assert detect_format(DATA / "bundle.json") == "stix"
    assert detect_format(DATA / "misp_event.json") == "misp"
    assert detect_format(DATA / "indicators.csv") == "csv"
    assert guess_type("203.0.113.77") is IndicatorType.ip
    assert guess_type("D41D8CD98F00B204E9800998ECF8427E") is IndicatorType.hash
    assert guess_type("https://a.example/x") is IndicatorType.url
    assert guess_type("a@b.example") is IndicatorType.email
    assert guess_type("Evil.Example.") is IndicatorType.domain
    assert guess_type("not a value") is None
    assert normalize("ip", "2001:DB8:0:0::1") == "2001:db8::1"
