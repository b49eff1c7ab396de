"""Detection to alerts and the CLI: load the regression set, detect with SigmaHQ rules, check alerts."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socflow.schemas import AlertIn
from tools.siem.cli import app
from tools.siem.detect import (
    ALERT_SOURCE,
    DEFAULT_RULES_DIR,
    DetectReport,
    GenericAlert,
    compile_rules,
    detect,
)
from tools.siem.embedded import EmbeddedSiem

SEVERITIES = {"informational", "low", "medium", "high", "critical"}
ENTITY_KEYS = {"hosts", "users", "ips", "hashes", "domains", "urls", "processes"}


def check_generic_alert(line: str) -> dict:
    """The generic alert format (DESIGN.md), checked on the emitted JSON itself."""
    alert = json.loads(line)
    assert set(alert) <= {
        "source",
        "source_ref",
        "title",
        "severity",
        "timestamp",
        "description",
        "rule",
        "entities",
        "raw",
    }
    assert alert["source"] == ALERT_SOURCE
    assert isinstance(alert["title"], str) and alert["title"]
    assert alert["severity"] in SEVERITIES
    assert datetime.fromisoformat(alert["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert set(alert["rule"]) == {"id", "name", "tags"}
    assert set(alert["entities"]) == ENTITY_KEYS
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in alert["entities"].values())
    raw = alert["raw"]
    assert raw["event_ids"] and raw["event_count"] == len(raw["event_ids"])
    assert len(raw["events"]) + raw["events_omitted"] == raw["event_count"]
    assert re.fullmatch(r"sigma-[0-9a-f]{32}", alert["source_ref"])
    GenericAlert.model_validate(alert)
    AlertIn.model_validate(alert)  # what socflow ingest accepts
    return alert


@pytest.fixture(scope="module")
def loaded_db(regression_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("siem") / "siem.db"
    result = CliRunner().invoke(app, ["load", str(regression_dir), "--siem-path", str(db)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["loaded"] > 200 and summary["skipped"] > 0
    return db


def test_cli_detect_with_sigmahq_rules_emits_valid_alerts(
    loaded_db: Path, sigma_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "alerts.ndjson"
    result = CliRunner().invoke(
        app, ["detect", "--rules", str(sigma_dir / "rules"), "--out", str(out), "--siem-path", str(loaded_db)]
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"emitted (\d+) alerts", result.stderr)
    assert match, result.stderr
    lines = out.read_text().splitlines()
    assert int(match.group(1)) == len(lines) > 100
    alerts = [check_generic_alert(line) for line in lines]
    assert len({a["source_ref"] for a in alerts}) == len(alerts)
    assert any(t.startswith("attack.t") for a in alerts for t in a["rule"]["tags"])
    assert any(a["entities"]["processes"] for a in alerts) and any(a["entities"]["hosts"] for a in alerts)


def test_default_rule_set_is_attributed_and_fires(loaded_db: Path) -> None:
    assert (DEFAULT_RULES_DIR / "LICENSE-SIGMA.md").is_file()
    assert (DEFAULT_RULES_DIR / "README.md").is_file()
    report = DetectReport()
    rules = compile_rules([DEFAULT_RULES_DIR], report)
    assert report.rules_total >= 200 and report.rules_converted == report.rules_total, report.failed[:3]
    with EmbeddedSiem(loaded_db) as siem:
        first = [a.model_dump() for a in detect(siem, rules, report)]
        again = [a.model_dump() for a in detect(siem, rules)]
    assert first == again  # idempotent: same alerts, same source_ref
    fired = {a["rule"]["id"] for a in first}
    assert len(fired) >= 0.9 * report.rules_total


def test_cli_query_and_bad_input(loaded_db: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "query",
            "--host",
            "ar-win-dc.attackrange.local",
            "--since",
            "2025-10-01T00:00:00Z",
            "--until",
            "2025-11-01T00:00:00Z",
            "--limit",
            "5",
            "--json",
            "--siem-path",
            str(loaded_db),
        ],
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 5 and {e["host"] for e in events} == {"ar-win-dc.attackrange.local"}
    assert events == sorted(events, key=lambda e: e["timestamp"])
    result = runner.invoke(app, ["query", "--since", "yesterday", "--siem-path", str(loaded_db)])
    assert result.exit_code == 2 and "--since" in result.stderr
    result = runner.invoke(app, ["load", "/nonexistent/logs", "--siem-path", str(loaded_db)])
    assert result.exit_code == 2 and "/nonexistent/logs" in result.stderr


def test_alert_raw_stays_under_the_ingest_limit() -> None:
    from tools.siem.detect import alert_for
    from tools.siem.models import BackendKind, SiemEvent
    from tools.siem.sigma_rules import compile_rule, parse_rule

    rule = compile_rule(
        parse_rule(
            "title: big\nid: 55555555-5555-4555-8555-555555555555\nlogsource: {product: windows, service: "
            "powershell}\ndetection:\n  sel:\n    EventID: 4104\n  condition: sel\nlevel: low\n"
        )
    )
    events = [
        SiemEvent(
            backend=BackendKind.EMBEDDED,
            event_id=f"{i:032x}",
            host="h",
            timestamp="2025-01-01T00:00:00.000000Z",
            raw={"ScriptBlockText": "x" * 60_000},
        )
        for i in range(40)
    ]
    alert = check_generic_alert(alert_for(rule, events).model_dump_json(exclude_none=True))
    assert alert["raw"]["events_omitted"] > 0 and alert["raw"]["event_count"] == 40
