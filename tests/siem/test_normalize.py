"""Normalization: the .evtx and .json forms of a SigmaHQ regression sample become identical flat events."""

from __future__ import annotations

from pathlib import Path

from tools.siem.loaders import read_path
from tools.siem.normalize import ecs_columns, normalize_event

# The .json of this sample was produced from a different capture: its ParentCommandLine reads
# "Explorer.exe" where the .evtx has "Explorer.EXE" (a real data difference, not a normalization one).
KNOWN_DIFFERENT = {"proc_creation_win_susp_right_to_left_override"}


def _events(path: Path) -> list[dict]:
    parsed = list(read_path(path))
    assert all(p.event is not None for p in parsed), [p.skip_reason for p in parsed if p.event is None]
    return [p.event for p in parsed if p.event is not None]


def test_evtx_and_json_forms_normalize_to_identical_events(regression_dir: Path) -> None:
    pairs = 0
    mismatched: list[str] = []
    for json_path in sorted(regression_dir.rglob("*.json")):
        evtx_path = json_path.with_suffix(".evtx")
        if not evtx_path.exists():
            continue
        pairs += 1
        from_evtx, from_json = _events(evtx_path), _events(json_path)
        assert from_evtx, evtx_path
        if from_evtx != from_json:
            mismatched.append(json_path.parent.name)
    assert pairs >= 200
    assert set(mismatched) == KNOWN_DIFFERENT, mismatched


def test_known_different_sample_differs_only_in_the_recorded_field(regression_dir: Path) -> None:
    (json_path,) = regression_dir.rglob("proc_creation_win_susp_right_to_left_override/*.json")
    (a,), (b,) = _events(json_path.with_suffix(".evtx")), _events(json_path)
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"ParentCommandLine"}


def test_evtx_shapes_attributes_text_and_string_event_id() -> None:
    record = {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{54}"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": "4688"},
                "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00.1234567Z"}},
                "Channel": "Security",
                "Computer": "WS1.corp.local",
                "Correlation": None,
            },
            "EventData": {
                "SubjectUserName": "alice",
                "NewProcessName": "C:\\Windows\\System32\\cmd.exe  ",
                "CommandLine": {"#text": "cmd.exe /c whoami"},
            },
        }
    }
    flat = normalize_event(record)
    assert flat["EventID"] == 4688
    assert flat["EventID_Qualifiers"] == 0
    assert flat["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert flat["TimeCreated"] == "2024-05-01T10:00:00.123456Z"
    assert flat["NewProcessName"] == "C:\\Windows\\System32\\cmd.exe"
    assert flat["CommandLine"] == "cmd.exe /c whoami"
    assert "Correlation" not in flat
    columns = ecs_columns(flat)
    assert columns["host.name"] == "WS1.corp.local"
    assert columns["user.name"] == "alice"
    assert columns["process.name"] == "cmd.exe"
    assert columns["event.code"] == "4688"
    assert columns["@timestamp"] == "2024-05-01T10:00:00.123456Z"


def test_otrf_flat_records_map_onto_windows_names() -> None:
    flat = normalize_event(
        {
            "Hostname": "WORKSTATION5",
            "SourceName": "Microsoft-Windows-Sysmon",
            "EventID": "1",
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "@timestamp": "2020-09-21T23:03:06.152Z",
            "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "User": "THESHIRE\\pgustavo",
            "SourceIp": None,
        }
    )
    assert flat["Computer"] == "WORKSTATION5"
    assert flat["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert flat["EventID"] == 1
    assert flat["TimeCreated"] == "2020-09-21T23:03:06.152000Z"
    assert "SourceIp" not in flat
    columns = ecs_columns(flat)
    assert columns["user.name"] == "pgustavo"
    assert columns["process.name"] == "powershell.exe"


def test_defender_field_names_lose_their_spaces() -> None:
    flat = normalize_event({"Event": {"System": {"EventID": 1116}, "EventData": {"Threat Name": "EICAR"}}})
    assert flat["ThreatName"] == "EICAR"


def test_xml_style_named_data_items() -> None:
    flat = normalize_event(
        {
            "Event": {
                "System": {"EventID": "4688", "Channel": "Security"},
                "EventData": {
                    "Data": [
                        {"#attributes": {"Name": "NewProcessName"}, "#text": "C:\\a.exe"},
                        {"#attributes": {"Name": "CommandLine"}, "#text": "a.exe -x"},
                    ]
                },
            }
        }
    )
    assert flat == {
        "EventID": 4688,
        "Channel": "Security",
        "NewProcessName": "C:\\a.exe",
        "CommandLine": "a.exe -x",
    }
