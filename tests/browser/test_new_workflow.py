"""Acceptance (issue 15): a workflow made by ``socflow workflow new`` in a folder registered through the
settings starts on its own alerts, shows its draft on the case page, and is approved through the API and
the CLI, with no edit outside the new package.

The package's trigger is changed to its own alert source (inside the package); two alerts from that
source open two cases through the REST API; the trigger queues one run of the new workflow per case (the
built-in ``alert_triage`` triggers on every case, so each case gets its run too); the runs are advanced
as a worker would; a real browser sees both note kinds on each case page; one draft is approved with
``POST /api/v1/cases/{id}/decision``, the other with ``socflow approve``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.enums import RunStatus
from socflow.settings import Settings
from socflow.store import CaseStore
from socflow.tables import WorkflowRun
from socflow.testing import ScriptedModel, ScriptRule
from tests.api.conftest import make_token
from tests.browser.conftest import Tab, artifacts_dir, log_in
from tests.conftest import REPO_ROOT
from tests.web.helpers import SECRET, make_web_app
from tests.workflows.triage_helpers import make_runner, scripted_rules

pytestmark = pytest.mark.browser

NAME = "phish_check"
SOURCE = "phish-gateway"
FINDINGS = {"summary": "A credential phishing mail reached the user.", "priority": "high"}


def _alert(ref: str, user: str) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "source_ref": ref,
        "title": f"Credential phishing reported by {user}",
        "severity": "medium",
        "rule": {"id": f"gw-{ref}", "tags": ["attack.t1566.002"]},
        "entities": {"users": [user], "urls": [f"https://login-{ref}.example/"]},
    }


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``socflow workflow new`` into a plugin folder, its trigger set to its own alert source."""
    dest = tmp_path_factory.mktemp("plugins")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    new = subprocess.run(
        [sys.executable, "-m", "socflow", "workflow", "new", NAME, "--dest", str(dest)],
        capture_output=True,
        text=True,
        env=env,
        cwd=dest,
        timeout=120,
    )
    assert new.returncode == 0, new.stderr
    spec_file = dest / NAME / "__init__.py"
    text = spec_file.read_text()
    assert f'triggers=(Trigger.source("{NAME}"),)' in text  # the scaffold's trigger, on its own source
    spec_file.write_text(text.replace(f'Trigger.source("{NAME}")', f'Trigger.source("{SOURCE}")'))
    return dest


def _model() -> ScriptedModel:
    own = ScriptRule(
        FINDINGS, node="assess_case", method="generate_structured", contains="Summarise the case"
    )
    return ScriptedModel([own, *scripted_rules()])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, base: str, settings: Settings, tokens: dict[str, str]) -> None:
        self.base, self.settings, self.token, self.tokens = base, settings, tokens["analyst"], tokens


@pytest.fixture(scope="module")
def server(
    plugin: Path, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    import uvicorn

    tmp = tmp_path_factory.mktemp("new-workflow")
    shutil.copyfile(_sqlite_template, tmp / "socflow.db")
    settings = Settings(
        database={"url": f"sqlite:///{tmp / 'socflow.db'}"},
        siem={"path": tmp / "siem.db"},
        model={"backend": "scripted"},
        api={"secret_key": SECRET},
        workflows={"paths": [plugin]},
    )
    tokens = {role.value: make_token(settings.database.url, role, name=f"{role.value}-ana") for role in Role}
    port = _free_port()
    config = uvicorn.Config(
        make_web_app(settings), host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="ui-server-new-workflow", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the UI server did not start")
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", settings, tokens)
    uv.should_exit = True
    thread.join(timeout=10)


def _runs(settings: Settings, case_id: int) -> dict[str, WorkflowRun]:
    with session_factory(make_engine(settings.database.url))() as s:
        rows = list(s.scalars(select(WorkflowRun).where(WorkflowRun.case_id == case_id)))
        s.expunge_all()
    return {r.workflow: r for r in rows}


def _note(settings: Settings, case_id: int) -> tuple[str, int, str]:
    with session_factory(make_engine(settings.database.url))() as s:
        note = CaseStore(s).get_note(case_id, kind=NAME)
        assert note is not None
        return note.status, note.current_revision, CaseStore(s).get_current_revision(note).body


def test_scaffolded_workflow_runs_on_its_alerts_and_is_approved_by_api_and_cli(
    server: Server, tab: Tab, plugin: Path
) -> None:
    api = httpx.Client(base_url=server.base, timeout=60)
    # two alerts from the new workflow's source: two cases
    resp = api.post(
        "/api/v1/alerts",
        json=[_alert("m-1", "alice"), _alert("m-2", "bob")],
        headers={"Authorization": f"Bearer {server.tokens['ingest']}"},
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    case_ids = [i["case_id"] for i in items]
    assert [i["status"] for i in items] == ["accepted", "accepted"] and len(set(case_ids)) == 2
    assert resp.json()["runs_queued"] == 4  # its own run and alert_triage's, per case

    # its runs start on their own: queued by the trigger, advanced as a worker would
    runner = make_runner(server.settings, _model())
    for case_id in case_ids:
        runs = _runs(server.settings, case_id)
        assert set(runs) == {NAME, "alert_triage"}
        assert runs[NAME].status == RunStatus.queued.value
        for run in runs.values():
            assert runner.advance(run.id).status is RunStatus.awaiting_input, runner.get(run.id).error
        status, revision, body = _note(server.settings, case_id)
        assert status == "draft" and revision == 1 and FINDINGS["summary"] in body

    # their drafts on the case page, each note kind in its own section
    log_in(tab, server)  # type: ignore[arg-type]
    page = tab.page
    for case_id in case_ids:
        page.goto(f"{server.base}/cases/{case_id}")
        own = page.locator(f'section[data-note-kind="{NAME}"]')
        assert own.count() == 1
        assert FINDINGS["summary"] in own.inner_text() and "Phish check" in own.inner_text()
        assert page.locator('section[data-note-kind="case_note"]').count() == 1
    page.screenshot(path=str(artifacts_dir() / "ui-new-workflow.png"), full_page=True)
    assert tab.errors == []

    # one approved through the API
    first, second = case_ids
    run_id = _runs(server.settings, first)[NAME].id
    decided = api.post(
        f"/api/v1/cases/{first}/decision",
        json={"action": "approve", "run_id": run_id},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "completed"
    assert _note(server.settings, first)[0] == "approved"

    # the other through the CLI
    run_id = _runs(server.settings, second)[NAME].id
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SOCFLOW_DATABASE__URL": server.settings.database.url,
        "SOCFLOW_WORKFLOWS__PATHS": json.dumps([str(plugin)]),
        "SOCFLOW_MODEL__BACKEND": "scripted",
        "SOCFLOW_SIEM__PATH": str(server.settings.siem.path),
    }
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "socflow",
            "approve",
            str(second),
            "--user",
            "bob",
            "--approve",
            "--run",
            run_id,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=plugin,
        timeout=240,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "completed" in cli.stdout
    assert _note(server.settings, second)[0] == "approved"
    assert (
        _runs(server.settings, second)["alert_triage"].status == RunStatus.awaiting_input.value
    )  # untouched
