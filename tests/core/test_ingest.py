import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.ingest import IngestService, dedup_key, parse_payload
from socflow.schemas import AlertIn
from socflow.tables import Alert, AuditEvent, Case, Observable

GOOD = [
    {
        "source": "edr",
        "source_ref": "r-1",
        "title": "PowerShell",
        "severity": "high",
        "entities": {"hosts": ["WS1"], "users": ["alice"]},
    },
    {
        "source": "edr",
        "title": "No ref here",
        "severity": "low",
        "timestamp": "2025-04-09T10:05:10Z",
        "description": "beacon to evil[.]example[.]com from 10.0.0[.]7",
    },
    {"source": "siem", "source_ref": "r-2", "title": "Logon", "severity": "Medium"},
]


def _file_with_bad_lines(path: Path) -> Path:
    lines = [
        json.dumps(GOOD[0]),
        '{"source": "edr", "title": "truncated", ',  # line 2: bad JSON
        json.dumps(GOOD[1]),
        json.dumps({"source": "edr", "title": "no severity"}),  # line 4: missing field
        json.dumps(GOOD[2]),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(args: list[str], db: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCFLOW_DATABASE__URL": db}
    return subprocess.run(
        [sys.executable, "-m", "socflow", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_ingest_reports_bad_lines_and_is_idempotent(sqlite_url: str, tmp_path: Path) -> None:
    alerts = _file_with_bad_lines(tmp_path / "alerts.ndjson")
    first = _cli(["ingest", str(alerts)], sqlite_url, tmp_path)
    assert first.returncode == 1, first.stderr
    assert "line 2: rejected" in first.stderr and "invalid JSON" in first.stderr
    assert "line 4: rejected (severity)" in first.stderr
    assert "3 accepted, 0 duplicate, 2 rejected" in first.stdout

    second = _cli(["ingest", str(alerts)], sqlite_url, tmp_path)
    assert second.returncode == 1
    assert "0 accepted, 3 duplicate, 2 rejected" in second.stdout
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count(Alert.id))) == 3
    engine.dispose()


def test_cli_ingest_missing_file_is_one_clear_line(sqlite_url: str, tmp_path: Path) -> None:
    out = _cli(["ingest", str(tmp_path / "nope.ndjson")], sqlite_url, tmp_path)
    assert out.returncode == 2
    assert "no such file" in out.stderr


def test_service_stores_groups_and_extracts_observables(db_url: str) -> None:
    engine = make_engine(db_url)
    created: list[int] = []
    service = IngestService(session_factory(engine), on_case_created=created.append)
    report = service.ingest_text("\n".join(json.dumps(a) for a in GOOD), actor="test")
    assert [i.status for i in report.items] == ["accepted"] * 3
    again = service.ingest_text(json.dumps(GOOD), actor="test")  # same alerts as a JSON array
    assert [i.status for i in again.items] == ["duplicate"] * 3
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count(Case.id))) == 3
        assert sorted(created) == sorted(session.scalars(select(Case.id)))
        values = set(session.scalars(select(Observable.value)))
        assert {"evil.example.com", "10.0.0.7", "WS1", "alice"} <= values
        actions = list(session.scalars(select(AuditEvent.action)))
        assert actions.count("alert.ingested") == 3 and actions.count("case.created") == 3
        no_ref = session.scalar(select(Alert).where(Alert.source_ref.is_(None)))
        assert no_ref is not None and no_ref.dedup_key.startswith("fp:")
    engine.dispose()


def test_dedup_key_ignores_nothing_but_receipt() -> None:
    a = AlertIn.model_validate(GOOD[1])
    b = AlertIn.model_validate({**GOOD[1], "title": "No ref here, changed"})
    assert dedup_key(a) == dedup_key(AlertIn.model_validate(dict(GOOD[1])))
    assert dedup_key(a) != dedup_key(b)
    assert dedup_key(AlertIn.model_validate(GOOD[0])) == "r-1"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"source": "x", "title": "t", "severity": "urgent"}, "severity"),
        ({"source": "x", "title": "", "severity": "low"}, "title"),
        ({"source": "x\x00y", "title": "t", "severity": "low"}, "source"),
        ({"source": "x", "title": "t", "severity": "low", "description": "a" * 70_000}, "description"),
        ({"source": "x", "title": "t", "severity": "low", "raw": {"blob": "b" * 300_000}}, "raw"),
        ({"source": "x", "title": "t", "severity": "low", "tool": "shell"}, "tool"),
    ],
)
def test_hostile_or_oversize_fields_are_rejected_with_the_field(payload: dict, field: str, factory) -> None:  # type: ignore[no-untyped-def]
    report = IngestService(factory).ingest_text(json.dumps(payload), actor="t")
    (item,) = report.items
    assert item.status == "rejected" and item.field == field


def test_parse_payload_forms() -> None:
    assert [i.data["a"] for i in parse_payload('[{"a": 1}, {"a": 2}]')] == [1, 2]
    assert [i.data["a"] for i in parse_payload('{"a": 1}')] == [1]
    items = list(parse_payload('{"a": 1}\n\n{"a": 2}\nnot json\n'))
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 3), (2, 4)]
    assert items[2].error is not None
