"""The drop folder: good files end in processed/, bad ones in failed/ with the reason; nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from socflow.connectors import FolderWatcher, PollResult
from tests.ingest.conftest import Stored

FIXTURES = Path(__file__).parent / "fixtures"


def generic(n: int, **extra: Any) -> dict[str, Any]:
    return {"source": "drop", "source_ref": f"d-{n}", "title": f"Alert {n}", "severity": "low", **extra}


def test_good_files_are_ingested_and_moved(tmp_path: Path, stored: Stored) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.ndjson").write_text("\n".join(json.dumps(generic(n)) for n in (1, 2)) + "\n")
    shutil.copy(FIXTURES / "wazuh_alerts.json", drop / "wazuh.ndjson")
    shutil.copy(FIXTURES / "elastic_alert.json", drop / "elastic.json")
    shutil.copy(FIXTURES / "cookbook_alerts.json", drop / "cookbook.json")
    (drop / "later.json.tmp").write_text("{}")  # still being written: not ours yet
    (drop / ".hidden.json").write_text("{}")

    watcher = FolderWatcher(drop, stored.ingest("connector:folder"), settle_seconds=0)
    result = watcher.poll_once()
    assert (result.fetched, result.accepted, result.duplicates, result.rejected) == (9, 9, 0, 0)
    assert sorted(p.name for p in (drop / "processed").iterdir()) == [
        "a.ndjson",
        "cookbook.json",
        "elastic.json",
        "wazuh.ndjson",
    ]
    assert sorted(p.name for p in drop.iterdir()) == [".hidden.json", "later.json.tmp", "processed"]
    sources = sorted({source for source, _ in stored.refs()})
    assert sources == ["cookbook", "drop", "elastic-security", "wazuh"]

    assert watcher.poll_once() == PollResult()  # nothing read twice

    # the same file dropped again: read, nothing new stored, moved beside the first copy
    (drop / "a.ndjson").write_text(json.dumps(generic(1)) + "\n")
    again = watcher.poll_once()
    assert (again.fetched, again.accepted, again.duplicates) == (1, 0, 1)
    assert len(list((drop / "processed").glob("a.*ndjson"))) == 2
    assert len(stored.refs()) == 9


def test_bad_files_go_to_failed_with_the_reason(tmp_path: Path, stored: Stored) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "broken.json").write_text('{"source": "drop", "title": ')
    (drop / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (drop / "mixed.ndjson").write_text(
        "\n".join(
            [
                json.dumps(generic(1)),
                json.dumps({"source": "drop", "title": "no severity"}),
                json.dumps({"unknown": "shape"}),
                json.dumps(generic(2)),
            ]
        )
        + "\n"
    )
    watcher = FolderWatcher(drop, stored.ingest("connector:folder"), settle_seconds=0)
    result = watcher.poll_once()
    assert (result.accepted, result.rejected) == (2, 4)
    failed = drop / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        "binary.json",
        "binary.json.error",
        "broken.json",
        "broken.json.error",
        "mixed.ndjson",
        "mixed.ndjson.error",
    ]
    assert "invalid JSON" in (failed / "broken.json.error").read_text()
    # invalid UTF-8 bytes become U+FFFD (a file with some bad bytes keeps its good items); this one is no JSON
    assert "invalid JSON" in (failed / "binary.json.error").read_text()
    mixed = (failed / "mixed.ndjson.error").read_text().splitlines()
    assert mixed[0] == "line 2: severity: Field required"
    assert mixed[1].startswith("line 3: format: unrecognised alert format")
    assert (failed / "mixed.ndjson").read_bytes()  # the original is kept as is
    assert stored.refs() == [("drop", "d-1"), ("drop", "d-2")]  # the good lines are stored
    assert not (drop / "processed").exists() or not any((drop / "processed").iterdir())


def test_custom_format_by_field_map(tmp_path: Path, stored: Stored) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(FIXTURES / "custom_alert.json", drop / "nx.json")
    field_map = {
        "title": "alert.name",
        "severity": "alert.prio",
        "source_ref": "alert.id",
        "hosts": "device.hostname",
    }
    watcher = FolderWatcher(
        drop,
        stored.ingest("connector:folder"),
        fmt="custom",
        field_map=field_map,
        source="nx",
        settle_seconds=0,
    )
    assert watcher.poll_once().accepted == 1
    assert stored.refs() == [("nx", "NX-77812")]


def test_store_failure_leaves_the_file_for_the_next_poll(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.json").write_text(json.dumps(generic(1)))

    def broken(alerts: list[dict[str, Any]]) -> PollResult:
        raise RuntimeError("database is down")

    result = FolderWatcher(drop, broken, settle_seconds=0).poll_once()
    assert result.accepted == 0 and "will retry" in result.problems[0]
    assert (drop / "a.json").exists()
    assert not (drop / "failed").exists()


def test_files_still_settling_are_left_alone(tmp_path: Path, stored: Stored) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    file = drop / "a.json"
    file.write_text(json.dumps(generic(1)))
    watcher = FolderWatcher(drop, stored.ingest("connector:folder"), settle_seconds=60)
    assert watcher.poll_once().fetched == 0
    old = time.time() - 120
    os.utime(file, (old, old))
    assert watcher.poll_once().accepted == 1
