"""``socflow workflow graph | run | new`` and the graph snapshots that pin each built-in's topology."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socflow.cli import app
from socflow.registry import discover
from socflow.testing import CaseFactory, alert

SNAPSHOTS = Path(__file__).resolve().parents[1] / "workflows" / "snapshots"
BUILT_INS = discover(entry_points=False).names()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "none")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "no-siem.db"))
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    return CliRunner()


@pytest.mark.parametrize("name", BUILT_INS)
def test_graph_matches_its_snapshot(name: str) -> None:
    snapshot = SNAPSHOTS / f"{name}.mmd"
    regenerate = f"regenerate after an intended change: socflow workflow graph {name} > {snapshot}"
    assert snapshot.is_file(), f"no snapshot for {name}; {regenerate}"
    result = CliRunner().invoke(app, ["workflow", "graph", name])
    assert result.exit_code == 0, result.output
    assert result.stdout == snapshot.read_text(encoding="utf-8"), f"{name}'s topology changed; {regenerate}"


def test_graph_of_an_unknown_workflow_is_one_line_and_exit_1() -> None:
    result = CliRunner().invoke(app, ["workflow", "graph", "no_such_flow"])
    assert result.exit_code == 1 and "no workflow named 'no_such_flow'" in result.stderr


def test_run_on_a_case_stops_at_the_approval_interrupt(cli: CliRunner, sqlite_url: str) -> None:
    from socflow.db import make_engine, session_factory

    case_id = CaseFactory(session_factory(make_engine(sqlite_url))).case(
        alert("Encoded PowerShell", hosts=["WS1"], tags=["attack.t1059.001"])
    )
    result = cli.invoke(app, ["workflow", "run", "alert_triage", "--case", str(case_id)])
    assert result.exit_code == 0, result.output
    assert "awaiting_input" in result.stdout and f"socflow approve {case_id}" in result.stdout
    payload = result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1]
    assert json.loads(payload)["allowed_actions"] == ["approve", "edit", "reject", "escalate"]


def test_run_usage_errors(cli: CliRunner, tmp_path: Path) -> None:
    needs_case = cli.invoke(app, ["workflow", "run", "incident_report"])
    assert needs_case.exit_code == 2 and "--case" in needs_case.stderr
    missing = cli.invoke(app, ["workflow", "run", "incident_report", "--case", "999"])
    assert missing.exit_code == 1 and "case 999 does not exist" in missing.stderr
    no_file = cli.invoke(app, ["workflow", "run", "log_triage", "--input", str(tmp_path / "nope.json")])
    assert no_file.exit_code == 2 and "no such file" in no_file.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lines": ["x"], "colour": "red"}), encoding="utf-8")
    extra = cli.invoke(app, ["workflow", "run", "log_triage", "--input", str(bad)])
    assert extra.exit_code == 2 and "colour" in extra.stderr


def test_new_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["workflow", "new", "Bad-Name", "--dest", str(tmp_path)])
    assert bad.exit_code == 2 and "lowercase Python identifier" in bad.stderr
    reserved = runner.invoke(app, ["workflow", "new", "class", "--dest", str(tmp_path)])
    assert reserved.exit_code == 2 and "reserved" in reserved.stderr
    first = runner.invoke(app, ["workflow", "new", "phish_triage", "--dest", str(tmp_path)])
    assert first.exit_code == 0, first.output
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "phish_triage").rglob("*.py"))
    assert files == [
        "phish_triage/__init__.py",
        "phish_triage/graph.py",
        "phish_triage/nodes.py",
        "phish_triage/prompts.py",
        "phish_triage/state.py",
        "phish_triage/tests/__init__.py",
        "phish_triage/tests/test_phish_triage.py",
    ]
    again = runner.invoke(app, ["workflow", "new", "phish_triage", "--dest", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.stderr
