"""Machine-readable CLI output: ``--json`` on every command that lists or shows, plain tables when piped,
and control characters (ESC/CSI/OSC 8, C0/C1, bidi) escaped in everything the CLI prints."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from rich.table import Table
from typer.main import get_command
from typer.testing import CliRunner

from socflow.cli import app
from socflow.cli_output import SafeConsole, escape_controls
from socflow.db import make_engine, session_factory
from socflow.schemas import now_utc
from socflow.tables import Alert, Case
from tests.conftest import REPO_ROOT

LISTS_OR_SHOWS = {"list", "show", "info", "lookup", "query", "current", "status", "graph", "stats"}
CLEAR = "\x1b[2J\x1b[H"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
HOSTILE_TITLE = f"Beacon{CLEAR} {OSC8} \u202egnp.exe\u202c \x9b31m bell\x07 end"
LONG_TITLE = (
    "Suspicious encoded PowerShell download cradle spawned by winword.exe on finance workstation " * 2
)


def _commands() -> list[tuple[list[str], Any]]:
    """Every leaf command of the ``socflow`` tree (Typer's groups answer ``list_commands``)."""
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])
        else:
            out.append((path, cmd))

    walk(get_command(app), [])
    return out


def _seed(url: str, title: str) -> int:
    with session_factory(make_engine(url))() as s, s.begin():
        now = now_utc()
        case = Case(title=title, status="new", severity="high", created_at=now, updated_at=now)
        s.add(case)
        s.flush()
        s.add(
            Alert(
                source="edr\x1b[31m",
                dedup_key=f"k-{case.id}",
                received_at=now,
                title=title,
                severity="high",
                rule_id="r-1",
                rule_tags=[],
                entities={},
                case_id=case.id,
                grouping_reason=f"rule r-1{CLEAR}",
            )
        )
        return case.id


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "no-siem.db"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _a_pack_rule() -> str:
    from tools.siem.pack import SHIPPED_PACK, read_pack_rules

    return next(r.rule_id for r in read_pack_rules(SHIPPED_PACK) if r.windows)


def test_every_list_or_show_command_accepts_json_and_prints_valid_json(
    cli: CliRunner, sqlite_url: str
) -> None:
    case_id = _seed(sqlite_url, "a case")
    found = {" ".join(path): cmd for path, cmd in _commands() if path[-1] in LISTS_OR_SHOWS}
    assert {"cases list", "cases show", "token list", "runs list", "workflow list", "stats"} <= set(found)
    for name, cmd in found.items():
        flags = {flag for p in cmd.params for flag in getattr(p, "opts", [])}
        assert "--json" in flags, f"socflow {name} has no --json"
    args = {
        "cases show": [str(case_id)],
        "workflow graph": ["alert_triage"],
        "attack lookup": ["T1059.001"],
        "siem query": ["--host", "WS1"],
        "siem rules show": [_a_pack_rule()],
    }
    needs_a_service = {"worker status"}  # a broker with workers: covered by tests/workers
    for name in sorted(set(found) - needs_a_service):
        if name == "siem query":
            continue  # needs a loaded SIEM store: NDJSON, covered by tests/siem
        result = cli.invoke(app, [*name.split(), *args.get(name, []), "--json"])
        assert result.exit_code == 0, (name, result.output)
        json.loads(result.stdout)  # one valid JSON document


def test_json_shapes_carry_the_rows(cli: CliRunner, sqlite_url: str) -> None:
    case_id = _seed(sqlite_url, HOSTILE_TITLE)
    listed = json.loads(cli.invoke(app, ["cases", "list", "--json"]).stdout)
    assert [c["id"] for c in listed] == [case_id] and listed[0]["title"] == HOSTILE_TITLE
    assert listed[0]["alerts"] == 1
    shown = cli.invoke(app, ["cases", "show", str(case_id), "--json"])
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout  # JSON escapes them (\u001b)
    detail = json.loads(shown.stdout)
    assert detail["alerts"][0]["title"] == HOSTILE_TITLE and detail["note"] is None
    figures = json.loads(cli.invoke(app, ["stats", "--json", "--range", "24h"]).stdout)
    assert figures["cases"]["opened"] == 1 and figures["alerts"]["received"] == 1


def test_escape_sequences_in_titles_are_escaped_in_cases_list_and_show(
    cli: CliRunner, sqlite_url: str
) -> None:
    case_id = _seed(sqlite_url, HOSTILE_TITLE)
    for argv in (["cases", "list"], ["cases", "show", str(case_id)]):
        result = cli.invoke(app, argv)
        assert result.exit_code == 0, result.output
        out = result.stdout
        for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u202c"):
            assert raw not in out, (argv, repr(out))
        assert "\\x1b[2J\\x1b[H" in out and "\\x1b]8;;https://evil.example/\\x1b\\click me" in out
        assert "\\u202egnp.exe\\u202c" in out and "\\x9b31m" in out and "bell" in out  # BEL: rich drops it


def test_on_a_terminal_only_the_consoles_own_styles_are_escape_codes() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, force_terminal=True, color_system="standard", width=200)
    table = Table("id", "title", title="cases")
    table.add_row("1", HOSTILE_TITLE)
    console.print(table)
    console.print(f"[bold]note[/bold] {HOSTILE_TITLE}", highlight=False)
    out = buffer.getvalue()
    assert "\x1b[1m" in out  # rich's bold: a style, kept
    assert "\x1b[2J" not in out and "\x1b]8;;" not in out and "\u202e" not in out and "\x9b" not in out
    assert escape_controls(CLEAR) in out


def test_cases_list_piped_prints_plain_unwrapped_rows(sqlite_url: str, tmp_path: Path) -> None:
    case_id = _seed(sqlite_url, LONG_TITLE.strip())
    env = {**os.environ, "SOCFLOW_DATABASE__URL": sqlite_url, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run(  # stdout is a pipe, as in `socflow cases list | cat`
        [sys.executable, "-m", "socflow", "cases", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "status", "severity", "verdict", "conf", "alerts", "title"]
    row: list[Any] = lines[1].split("\t")
    assert row[0] == str(case_id) and row[-1] == LONG_TITLE.strip()  # the whole title on one line
    assert len(lines) == 2 and not any(ch in result.stdout for ch in "│┃━─")
