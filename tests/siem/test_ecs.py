"""The pack over ECS-shaped events: Winlogbeat/Elastic Agent documents derived from the development logs (and
a pure-ECS variant of process creation, without ``winlog.event_data``) raise the same rules as the EVTX-shaped
originals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import detect_batched
from tools.siem.loaders import read_path
from tools.siem.normalize import normalize_event
from tools.siem.pack import RuleSet, load_rule_set

SYSTEM = {"EventID", "Channel", "Computer", "Provider_Name", "EventRecordID", "TimeCreated"}


def winlogbeat(flat: dict[str, Any]) -> dict[str, Any]:
    """The document Winlogbeat 8 / Elastic Agent ships for this event (nested objects)."""
    return {
        "@timestamp": flat.get("TimeCreated"),
        "ecs": {"version": "8.11.0"},
        "event": {"code": str(flat.get("EventID")), "provider": flat.get("Provider_Name")},
        "host": {"name": flat.get("Computer")},
        "winlog": {
            "channel": flat.get("Channel"),
            "event_id": str(flat.get("EventID")),
            "computer_name": flat.get("Computer"),
            "provider_name": flat.get("Provider_Name"),
            "record_id": flat.get("EventRecordID"),
            "event_data": {k: v for k, v in flat.items() if k not in SYSTEM and "_" not in k},
        },
    }


def pure_ecs_process(flat: dict[str, Any]) -> dict[str, Any]:
    """Process creation with ECS fields only (dotted keys, as some shippers flatten them)."""
    doc = {
        "@timestamp": flat.get("TimeCreated"),
        "event.code": str(flat.get("EventID")),
        "winlog.channel": flat.get("Channel"),
        "host.name": flat.get("Computer"),
        "process.executable": flat.get("Image"),
        "process.command_line": flat.get("CommandLine"),
        "process.parent.executable": flat.get("ParentImage"),
        "process.parent.command_line": flat.get("ParentCommandLine"),
        "process.pe.original_file_name": flat.get("OriginalFileName"),
        "process.working_directory": flat.get("CurrentDirectory"),
        "user.name": flat.get("User"),
    }
    for key in ("IntegrityLevel", "Hashes", "Description", "Product", "Company", "LogonId"):
        if key in flat:
            doc[f"winlog.event_data.{key}"] = flat[key]
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return load_rule_set()


def _fired(path: Path, rules: list) -> set[str]:  # type: ignore[type-arg]
    with EmbeddedSiem(":memory:") as siem:
        siem.load([path])
        return {a.rule.id for a in detect_batched(siem, rules)}


def test_winlogbeat_and_pure_ecs_documents_raise_the_same_rules(
    regression_dir: Path, pack: RuleSet, tmp_path: Path
) -> None:
    enabled = {r.rule_id for r in pack.rules if pack.rule_filter.enabled(r)}
    files = [p for p in sorted(regression_dir.rglob("*.json")) if p.stem in enabled]
    chosen = [p for p in files if "process_creation" in str(p)][:4]
    chosen += [p for p in files if "registry" in str(p)][:2] + [p for p in files if "/builtin/" in str(p)][:2]
    rules = pack.enabled()
    compared = 0
    for path in chosen:
        events = [parsed.event for parsed in read_path(path) if parsed.event is not None]
        original = _fired(path, rules)
        assert path.stem in original
        beats = tmp_path / f"{path.stem}.ndjson"
        beats.write_text("\n".join(json.dumps(winlogbeat(e)) for e in events), encoding="utf-8")
        assert _fired(beats, rules) == original, path
        if "process_creation" in str(path) and all(e.get("EventID") == 1 for e in events):
            ecs = tmp_path / f"{path.stem}.ecs.ndjson"
            ecs.write_text("\n".join(json.dumps(pure_ecs_process(e)) for e in events), encoding="utf-8")
            assert path.stem in _fired(ecs, rules), path
        compared += 1
    assert compared >= 6


def test_ecs_document_maps_system_fields_and_entity_columns() -> None:
    flat = normalize_event(
        {
            "@timestamp": "2024-05-01T10:00:00.123Z",
            "host": {"name": "WS1"},
            "winlog": {
                "channel": "Security",
                "event_id": 4688,
                "event_data": {"NewProcessName": "C:\\a.exe"},
            },
            "process": {"command_line": "a.exe /x", "hash": {"sha256": "ab"}},
            "user": {"name": "bob", "domain": "CORP"},
        }
    )
    assert flat["EventID"] == 4688 and flat["Channel"] == "Security" and flat["Computer"] == "WS1"
    assert flat["NewProcessName"] == "C:\\a.exe" and flat["CommandLine"] == "a.exe /x"
    assert flat["User"] == "CORP\\bob" and flat["Hashes"] == "SHA256=ab"
    assert flat["TimeCreated"].startswith("2024-05-01T10:00:00.123")
