"""The console in Chromium: the live queue over an EventSource (no periodic fetches), the SOC dashboard
with hand-computed figures, workflow graphs drawn as SVG; screenshots in test-artifacts/screenshots."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser.conftest import Tab, UiServer, artifacts_dir, log_in
from tests.web.soc_seed import EXPECTED, SINCE, UNTIL, seed
from tests.workflows.triage_helpers import ingest_one

pytestmark = pytest.mark.browser


def shots() -> Path:
    path = artifacts_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_new_alert_appears_through_the_event_stream_without_polling(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.resource_type, r.url)))
    log_in(tab, ui_server)
    page.wait_for_selector("#live-state.live:not(.off)")
    before = len(requests)
    case_id = ingest_one(
        ui_server.settings,
        {"source": "edr", "source_ref": "live-1", "title": "Live beacon to 203.0.113.9", "severity": "high"},
    )
    page.wait_for_selector(f'tr[data-case-id="{case_id}"]', timeout=20_000)
    time.sleep(1.5)  # long enough for a poller to show itself
    later = requests[before:]
    assert not [u for kind, u in later if kind in ("fetch", "xhr")], later
    streams = [u for kind, u in requests if kind == "eventsource"]
    assert len(streams) == 1 and "/queue/events" in streams[0]
    assert not tab.errors, tab.errors
    page.screenshot(path=str(shots() / "queue.png"), full_page=True)


def test_dashboard_shows_hand_computed_figures_and_svg_charts(tab: Tab, ui_server: UiServer) -> None:
    seed(ui_server.settings.database.url)
    log_in(tab, ui_server)
    page = tab.page
    page.goto(f"{ui_server.base}/dashboard?since={SINCE}&until={UNTIL}".replace("+", "%2B"))
    tta = page.locator("#time_to_acknowledge dd.mean")
    assert tta.inner_text() == EXPECTED["tta"]["mean_text"]
    assert float(tta.get_attribute("data-seconds") or "nan") == EXPECTED["tta"]["mean"]
    assert page.locator("#time_to_acknowledge dd.p50").get_attribute("data-seconds") == "120.0"
    assert page.locator("#time_to_decide dd.mean").inner_text() == EXPECTED["ttd"]["mean_text"]
    assert page.locator("#auto_close .big").inner_text() == EXPECTED["auto_close"][2]
    assert page.locator("#agreement .big").inner_text() == EXPECTED["agreement"][2]
    closed = page.locator('#chart-status svg g.bar[data-label="closed"]')
    assert closed.get_attribute("data-value") == "3"
    assert page.locator("#chart-rules svg rect[data-key='r-alpha']").count() >= 1
    box = page.locator("#chart-status svg").bounding_box()
    assert box and box["width"] > 100 and box["height"] > 20  # drawn, not just present
    assert not tab.errors, tab.errors
    page.screenshot(path=str(shots() / "dashboard.png"), full_page=True)


def test_workflow_page_shows_an_svg_graph_and_the_case_its_run_path(tab: Tab, ui_server: UiServer) -> None:
    log_in(tab, ui_server)
    page = tab.page
    page.goto(ui_server.base + "/workflows")
    graph = page.locator("#workflow-alert_triage svg.graph")
    box = graph.bounding_box()
    assert box and box["width"] > 150 and box["height"] > 150
    assert graph.locator("g.node").count() == 9
    page.screenshot(path=str(shots() / "workflows.png"), full_page=True)
    page.goto(f"{ui_server.base}/cases/{ui_server.cases['override']}")
    alerts = page.locator("#alerts").bounding_box()
    table = page.locator("#alerts table").bounding_box()
    assert alerts and table and table["x"] + table["width"] <= alerts["x"] + alerts["width"] + 1
    page.screenshot(path=str(shots() / "case.png"), full_page=True)
    page.goto(f"{ui_server.base}/cases/{ui_server.cases['override']}/history")
    taken = page.locator("#run-paths svg g.node.taken")
    assert taken.count() >= 5
    assert not tab.errors, tab.errors
