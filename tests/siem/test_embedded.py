"""Entity and time-window search on the embedded backend; deterministic ids and evidence payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socflow.errors import InputError
from socflow.settings import SiemSettings
from tools.siem import EmbeddedSiem, EntityQuery, build_siem
from tools.siem.models import BackendKind, stable_id

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _event(minute: int, host: str, user: str, image: str, **extra: object) -> dict:
    event = {
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": host,
        "TimeCreated": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
        "User": f"CORP\\{user}",
        "Image": image,
        "CommandLine": f"{image} --n {minute}",
    }
    event.update(extra)
    return event


@pytest.fixture
def siem(tmp_path: Path) -> Iterator[EmbeddedSiem]:
    store = EmbeddedSiem(tmp_path / "siem.db")
    store.insert_events(
        [
            _event(0, "WS1", "alice", "C:\\Windows\\System32\\cmd.exe"),
            _event(10, "WS1", "alice", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"),
            _event(90, "WS1", "bob", "C:\\Windows\\System32\\whoami.exe", Hashes="SHA256=ABCDEF,MD5=1234"),
            _event(5, "WS2", "alice", "C:\\Windows\\System32\\cmd.exe"),
            {
                "EventID": 3,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WS2",
                "TimeCreated": "2025-03-01T12:20:00Z",
                "SourceIp": "10.0.0.5",
                "DestinationIp": "8.8.8.8",
                "Image": "C:\\x\\curl.exe",
            },
        ]
    )
    yield store
    store.close()


def test_host_and_one_hour_window(siem: EmbeddedSiem) -> None:
    events = siem.search(EntityQuery(host="ws1", since=T0, until=T0 + timedelta(hours=1)))
    assert [e.process for e in events] == ["cmd.exe", "powershell.exe"]  # oldest first, host case-insensitive
    assert all(e.host == "WS1" for e in events)


def test_user_ip_process_hash_and_limit(siem: EmbeddedSiem) -> None:
    assert {e.host for e in siem.search(EntityQuery(user="ALICE"))} == {"WS1", "WS2"}
    assert [e.destination_ip for e in siem.search(EntityQuery(ip="8.8.8.8"))] == ["8.8.8.8"]
    assert [e.source_ip for e in siem.search(EntityQuery(ip="10.0.0.5"))] == ["10.0.0.5"]
    assert len(siem.search(EntityQuery(process="cmd.exe"))) == 2
    assert [e.user for e in siem.search(EntityQuery(hash="abcdef"))] == ["bob"]
    assert len(siem.search(EntityQuery(user="alice", limit=1))) == 1
    assert siem.search(EntityQuery(host="WS1", user="bob", until=T0)) == []


def test_query_validation() -> None:
    with pytest.raises(InputError) as info:
        EntityQuery(since=T0, until=T0 - timedelta(seconds=1))
    assert info.value.field == "since"
    with pytest.raises(InputError):
        EntityQuery(since=datetime(2025, 1, 1))  # naive


def test_ids_are_deterministic_and_evidence_payload(siem: EmbeddedSiem, tmp_path: Path) -> None:
    (event,) = siem.search(EntityQuery(hash="ABCDEF"))
    assert event.id == stable_id("embedded", event.event_id)
    other = EmbeddedSiem(tmp_path / "other.db")
    other.insert_events(
        [_event(90, "WS1", "bob", "C:\\Windows\\System32\\whoami.exe", Hashes="SHA256=ABCDEF,MD5=1234")]
    )
    (again,) = other.search(EntityQuery(hash="ABCDEF"))
    other.close()
    assert again.event_id == event.event_id and again.id == event.id
    evidence = event.to_evidence("case-1")
    assert evidence["evidence_id"] == event.evidence_id("case-1") != event.evidence_id("case-2")
    assert evidence["kind"] == "siem_event" and evidence["backend"] == "embedded"
    assert evidence["source_event_id"] == event.event_id
    assert evidence["observed_at"] == "2025-03-01T13:30:00.000000Z"
    assert "whoami.exe" in evidence["summary"]
    json.dumps(evidence)  # JSON-plain
    record = event.evidence_record("case-1")
    assert record.evidence_id == evidence["evidence_id"] and record.observed_at is not None


def test_build_siem_from_settings(tmp_path: Path) -> None:
    siem = build_siem(SiemSettings(path=tmp_path / "x" / "siem.db"))
    assert siem.kind == BackendKind.EMBEDDED and (tmp_path / "x" / "siem.db").exists()
    siem.close()
