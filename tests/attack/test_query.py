"""Retrieval query text from raw events: event content only, noise removed."""

from __future__ import annotations

import json
from pathlib import Path

from tools.attack.query import event_query_text
from tools.attack.retrieval import get_index


def test_evtx_json_event_becomes_kind_words_and_behaviour_fields(shared_data: Path) -> None:
    path = next((shared_data / "logs" / "sigma-regression").rglob("*.json"))
    doc, _end = json.JSONDecoder().raw_decode(path.read_text(encoding="utf-8").lstrip())  # first event
    text = event_query_text(doc)
    assert text
    assert "SHA1=" not in text and "SystemTime" not in text


def test_sysmon_process_access_to_lsass_retrieves_lsass_memory() -> None:
    event = {
        "Event": {
            "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 10},
            "EventData": {
                "SourceImage": r"C:\Users\bob\AppData\Local\Temp\procdump64.exe",
                "TargetImage": r"C:\Windows\System32\lsass.exe",
                "GrantedAccess": "0x1fffff",
                "SourceProcessGUID": "{0197231E-005A-6928-A50B-000000000D00}",
            },
        }
    }
    text = event_query_text(event)
    assert text.splitlines()[0] == "process access"
    assert "0197231E" not in text and "AppData" not in text
    assert "T1003.001" in [h.id for h in get_index().search(text, 3)]


def test_flat_records_work_too() -> None:
    text = event_query_text({"Channel": "Security", "EventID": "4698", "TaskName": r"\Updater"})
    assert text.startswith("scheduled task created")
