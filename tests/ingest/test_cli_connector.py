"""``socflow connector run``: one poll per invocation with --once, counts printed, errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socflow.cli_connector import app
from tests.ingest.conftest import Stored
from tests.ingest.test_connectors import ELASTIC_TIMES, SPLUNK_TIMES, elastic_doc, splunk_row
from tests.servers.paging_http import paging_server

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> str:
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", db_url)
    return db_url


def test_folder_once(tmp_path: Path, env: str, stored: Stored) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.json").write_text(
        json.dumps({"source": "x", "source_ref": "1", "title": "t", "severity": "low"})
    )
    (drop / "bad.json").write_text("{nope")
    result = runner.invoke(app, ["run", "folder", "--path", str(drop), "--once", "--settle", "0"])
    assert result.exit_code == 1, result.output  # one file was rejected
    assert "folder: fetched=2 accepted=1 duplicates=0 rejected=1" in result.stdout
    assert (drop / "processed" / "a.json").exists()
    assert (drop / "failed" / "bad.json.error").exists()
    assert stored.refs() == [("x", "1")]


def test_elastic_and_splunk_once_with_env_credentials(
    monkeypatch: pytest.MonkeyPatch, env: str, stored: Stored
) -> None:
    with paging_server() as server:
        server.elastic_docs = [elastic_doc(n, t) for n, t in enumerate(ELASTIC_TIMES, start=1)]
        server.splunk_rows = [splunk_row(n, t) for n, t in enumerate(SPLUNK_TIMES, start=1)]
        server.required_auth = "ApiKey s3cret"
        monkeypatch.setenv("SOCFLOW_CONNECTOR__URL", server.url)
        monkeypatch.setenv("SOCFLOW_CONNECTOR__API_KEY", "s3cret")
        first = runner.invoke(app, ["run", "elastic", "--once", "--size", "2"])
        assert first.exit_code == 0, first.output
        assert first.stdout.startswith("elastic: fetched=5 accepted=5 duplicates=0 rejected=0 cursor=")
        again = runner.invoke(app, ["run", "elastic", "--once"])  # the cursor in the database: nothing new
        assert "elastic: fetched=0 accepted=0" in again.stdout

        server.required_auth = "Bearer tok"
        monkeypatch.delenv("SOCFLOW_CONNECTOR__API_KEY")
        splunk = runner.invoke(app, ["run", "splunk", "--once", "--token", "tok"])
        assert splunk.exit_code == 0, splunk.output
        assert "splunk: fetched=5 accepted=5" in splunk.stdout

        denied = runner.invoke(app, ["run", "splunk", "--once", "--password", "hunter2", "--username", "u"])
        assert denied.exit_code == 1
        assert "HTTP 401" in denied.stderr and "hunter2" not in denied.output
    assert len(stored.refs()) == 10


def test_missing_url_and_path_are_one_line_errors(env: str) -> None:
    result = runner.invoke(app, ["run", "elastic", "--once"])
    assert result.exit_code == 2 and "url: a URL is required" in result.stderr
    folder = runner.invoke(app, ["run", "folder", "--once"])
    assert folder.exit_code == 2 and "--path" in folder.output


def test_hostile_page_once_keeps_refused_hits_as_dead_letters(
    monkeypatch: pytest.MonkeyPatch, env: str, stored: Stored
) -> None:
    """``connector run --once`` wires the dead-letter hook: a hit with a 5,000-digit number and one that
    is not an object are refused (exit 1) and listed; the good hits of the page are stored."""
    good = [elastic_doc(n, t) for n, t in enumerate(ELASTIC_TIMES[:2], start=1)]
    hits = [
        json.dumps({"_id": "a", "_index": "i", "sort": [1, "a"], "_source": good[0]}).encode(),
        b'{"_id":"huge","_index":"i","sort":[2,"huge"],"_source":{"kibana.alert.uuid":"u-huge","n":'
        + b"9" * 5000
        + b"}}",
        b'"not an object"',
        json.dumps({"_id": "b", "_index": "i", "sort": [3, "b"], "_source": good[1]}).encode(),
    ]
    with paging_server() as server:
        server.raw_pages.append(b'{"hits":{"hits":[' + b",".join(hits) + b"]}}")
        monkeypatch.setenv("SOCFLOW_CONNECTOR__URL", server.url)
        result = runner.invoke(app, ["run", "elastic", "--once", "--lookback", "0"])
    assert result.exit_code == 1, result.output
    assert "elastic: fetched=4 accepted=2 duplicates=0 rejected=2" in result.stdout
    assert "hit huge: _source.n: number with 5000 digits" in result.stderr
    assert "hit #2: a search hit must be a JSON object" in result.stderr
    assert [ref for _, ref in stored.refs()] == ["uuid-001", "uuid-002"]

    from socflow.cli import app as main

    shown = runner.invoke(main, ["deadletters", "list", "--door", "connector", "--json"])
    rows = json.loads(shown.stdout)["rows"]
    assert sorted(r["reason"].split(":")[0] for r in rows) == ["hit #2", "hit huge"]
    assert {r["actor"] for r in rows} == {"connector:elastic"}
