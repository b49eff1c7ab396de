"""Issue 21's browser acceptance: in real headless Chromium against a real uvicorn server, a case whose
evidence shows a malicious process on a host gets a proposed "isolate host" action citing that evidence;
the analyst approves it with the note and declines the other; the approved action runs through a signed
webhook receiver started here; the note's "Actions taken" cites the result; the declined one never runs."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from socflow.actions.records import list_actions
from socflow.api import create_app
from socflow.auth import Role
from socflow.outbox import deliver_outbox
from socflow.settings import Settings
from socflow.web import mount_web
from socflow.wiring import build_services
from tests.actions.helpers import (
    MALICIOUS_ALERT,
    SECRET,
    SECRET_ENV,
    HttpReceiver,
    catalog_file,
    http_receiver,
    proposing_model,
)
from tests.api.conftest import make_token
from tests.browser.conftest import Tab, UiServer, _free_port, artifacts_dir, log_in
from tests.web.helpers import SECRET as WEB_SECRET
from tests.workflows.triage_helpers import ingest_one

pytestmark = pytest.mark.browser

ISOLATE = "isolate_host:WS-ACME-07"
DISABLE = "disable_user:jdoe"


@pytest.fixture
def action_server(
    _sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[UiServer, HttpReceiver, Any]]:
    import uvicorn

    monkeypatch.setenv(SECRET_ENV, SECRET)
    shutil.copyfile(_sqlite_template, tmp_path / "socflow.db")
    with http_receiver() as receiver:
        settings = Settings(
            database={"url": f"sqlite:///{tmp_path / 'socflow.db'}"},
            siem={"path": tmp_path / "siem.db"},
            model={"backend": "scripted"},
            api={"secret_key": WEB_SECRET},
            actions={"file": catalog_file(tmp_path, receiver.url)},
        )
        model = proposing_model(("isolate_host", "host", "WS-ACME-07"), ("disable_user", "user", "jdoe"))
        services = build_services(settings, model=model.with_recorder, dispatcher="null")
        case_id = ingest_one(settings, MALICIOUS_ALERT)
        result = services.runner.advance(services.runner.start("alert_triage", case_id=case_id, actor="test"))
        assert result.status.value == "awaiting_input"
        token = make_token(settings.database.url, Role.analyst, name="alice")
        port = _free_port()
        config = uvicorn.Config(
            mount_web(create_app(services=services)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="ui-actions", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the UI server did not start")
            time.sleep(0.05)
        try:
            yield UiServer(f"http://127.0.0.1:{port}", settings, token, {"mal": case_id}), receiver, services
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            services.close()


def test_analyst_approves_isolation_in_the_browser_and_the_note_cites_the_result(
    tab: Tab, action_server: tuple[UiServer, HttpReceiver, Any]
) -> None:
    server, receiver, services = action_server
    case_id = server.cases["mal"]
    page = tab.page
    log_in(tab, server)
    page.goto(f"{server.base}/cases/{case_id}")
    proposed = page.locator("#proposed-actions")
    isolate = proposed.locator("label.action-item", has_text="Isolate host: WS-ACME-07")
    assert isolate.count() == 1
    summary = isolate.inner_text()
    cited = summary.split("[", 1)[1].split("]", 1)[0].split(", ")
    assert cited and all(page.locator(f"#evidence-{label}").count() == 1 for label in cited)
    assert "WS-ACME-07" in page.locator(f"#evidence-{cited[0]}").inner_text()  # it shows the process
    assert "mimikatz.exe" in page.locator(f"#evidence-{cited[0]}").inner_text()
    assert (
        page.locator(f"#response-actions tr[data-item-id='{ISOLATE}'] .action-status").inner_text()
        == "proposed"
    )

    page.check(f"input[data-item-id='{ISOLATE}']")
    assert not page.is_checked(f"input[data-item-id='{DISABLE}']")  # declined: left unchecked
    page.click("#approve")
    page.wait_for_url(f"**/cases/{case_id}?decided=*")
    assert receiver.requests == []  # runs after the decision commits, through the outbox

    report = deliver_outbox(server.settings, factory=services.factory)
    assert report.delivered == 1, report
    (hook,) = receiver.requests
    assert hook.signature_ok() and hook.json()["target"] == "WS-ACME-07"

    page.goto(f"{server.base}/cases/{case_id}")
    note = page.locator("#note-body").inner_text()
    actions_taken = note.split("Actions taken", 1)[1]
    assert "Isolate host WS-ACME-07" in actions_taken and "ticket-4711" in actions_taken
    assert "approved by alice" in actions_taken and "jdoe" not in actions_taken.split("Recommended")[0]
    assert (
        page.locator(f"#response-actions tr[data-item-id='{ISOLATE}'] .action-status").inner_text()
        == "succeeded"
    )
    assert (
        page.locator(f"#response-actions tr[data-item-id='{DISABLE}'] .action-status").inner_text()
        == "declined"
    )
    page.screenshot(path=str(artifacts_dir() / "actions-approved.png"), full_page=True)
    with services.factory() as session:
        statuses = {r.item_id: r.status for r in list_actions(session, case_id)}
    assert statuses == {ISOLATE: "succeeded", DISABLE: "declined"}
    assert not tab.errors, tab.errors
