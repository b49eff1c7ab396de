"""``socflow attack``: info, lookup, map (the Typer sub-app, run directly)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.attack.cookbook import LSASS
from tools.attack.cli import app

runner = CliRunner()


def test_info_reports_version_and_counts() -> None:
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["attack_version"] == "18.1"
    assert payload["counts"]["techniques"] == 216 and payload["counts"]["subtechniques"] == 475
    assert "v18.1" in runner.invoke(app, ["info"]).output


def test_lookup_resolves_revoked_ids_and_refuses_unknown_ones() -> None:
    result = runner.invoke(app, ["lookup", "T1086", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert (payload["id"], payload["name"], payload["tactics"]) == ("T1059.001", "PowerShell", ["Execution"])
    text = runner.invoke(app, ["lookup", "T1003.001"])
    assert text.exit_code == 0 and "LSASS Memory" in text.output
    bad = runner.invoke(app, ["lookup", "T1999"])
    assert bad.exit_code == 2
    assert "unknown_technique" in bad.output


def test_map_prints_ranked_candidates() -> None:
    result = runner.invoke(app, ["map", LSASS, "--json", "--top", "3"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 3 and hits[0]["id"] == "T1003.001"
    assert set(hits[0]) == {"id", "name", "tactics", "score"}
    table = runner.invoke(app, ["map", LSASS])
    assert table.exit_code == 0 and "T1003.001" in table.output
