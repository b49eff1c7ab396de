"""The console pages over HTTP: acknowledgement, the SOC figures (API and dashboard), the live queue's
event stream, workflow graphs drawn as SVG with a run's path highlighted."""

from __future__ import annotations

import re
from typing import Any

from socflow.db import make_engine, session_factory
from socflow.store import CaseStore
from tests.web.conftest import Web
from tests.web.helpers import login
from tests.web.soc_seed import EXPECTED, SINCE, UNTIL, seed
from tests.workflows.triage_helpers import ingest_one, prepare_waiting_cases


def _case(url: str, case_id: int) -> Any:
    with session_factory(make_engine(url))() as s:
        case = CaseStore(s).get_case(case_id)
        events = CaseStore(s).list_audit(case_id=case_id, action="case.acknowledged")
        return case.acknowledged_at, case.acknowledged_by, [e.data["via"] for e in events]


def test_opening_a_case_acknowledges_it_once_and_an_engineer_does_not(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    login(web.client, web.tokens["engineer"])
    assert web.client.get(f"/cases/{case_id}").status_code == 200
    assert _case(web.url, case_id)[0] is None  # an engineer only reads
    web.client.cookies.clear()
    login(web.client, web.tokens["analyst"])
    web.client.get(f"/cases/{case_id}")
    at, by, via = _case(web.url, case_id)
    assert at is not None and by == "analyst-alice" and via == ["opened"]
    web.client.get(f"/cases/{case_id}")
    assert _case(web.url, case_id) == (at, by, via)  # the first acknowledgement stays


def test_a_decision_through_the_api_acknowledges_the_case(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    resp = web.client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={"action": "approve"},
        headers={"Authorization": f"Bearer {web.tokens['analyst']}"},
    )
    assert resp.status_code == 200, resp.text
    assert _case(web.url, case_id)[2] == ["decided"]


def test_soc_figures_from_the_api_match_the_hand_computed_ones(web: Web) -> None:
    seed(web.url)
    resp = web.client.get(
        "/api/v1/metrics/soc",
        params={"since": SINCE, "until": UNTIL},
        headers={"Authorization": f"Bearer {web.tokens['engineer']}"},
    )
    assert resp.status_code == 200, resp.text
    f = resp.json()
    for key, want in (("time_to_acknowledge", EXPECTED["tta"]), ("time_to_decide", EXPECTED["ttd"])):
        got = f[key]
        assert got["count"] == want["count"]
        assert got["mean_seconds"] == want["mean"]
        assert (got["p50_seconds"], got["p90_seconds"], got["p95_seconds"]) == (
            want["p50"],
            want["p90"],
            want["p95"],
        )
    assert f["cases"]["opened"] == 5  # the case opened before the range is not counted
    assert f["cases"]["by_status"] == EXPECTED["status"]
    assert f["auto_close"]["closed_automatically"] == EXPECTED["auto_close"][0]
    assert f["auto_close"]["rate"] == EXPECTED["auto_close"][1]
    assert (f["agreement"]["agreeing"], f["agreement"]["decisions"]) == EXPECTED["agreement"][:2]
    assert {s["key"]: s["total"] for s in f["alerts"]["by_rule"]["series"]} == EXPECTED["rules"]
    assert {s["key"]: s["total"] for s in f["alerts"]["by_source"]["series"]} == EXPECTED["sources"]
    assert f["model"]["calls"] == EXPECTED["model_calls"] and f["model"]["tokens"] == EXPECTED["tokens"]
    day = next(d for d in f["model"]["per_day"] if d["day"] == "2026-03-02")
    assert day["calls"] == 2 and day["mean_latency_ms"] == 200.0
    ingest = web.client.get(
        "/api/v1/metrics/soc", headers={"Authorization": f"Bearer {web.tokens['ingest']}"}
    )
    assert ingest.status_code == 403
    bad = web.client.get(
        "/api/v1/metrics/soc",
        params={"since": UNTIL, "until": SINCE},
        headers={"Authorization": f"Bearer {web.tokens['analyst']}"},
    )
    assert bad.status_code == 422


def test_dashboard_page_shows_the_figures_and_svg_charts(web: Web) -> None:
    seed(web.url)
    login(web.client, web.tokens["analyst"])
    page = web.client.get("/dashboard", params={"since": SINCE, "until": UNTIL})
    assert page.status_code == 200
    html = page.text
    tta = re.search(r'id="time_to_acknowledge".*?class="mean" data-seconds="([^"]*)">([^<]*)<', html, re.S)
    assert (
        tta
        and float(tta.group(1)) == EXPECTED["tta"]["mean"]
        and tta.group(2) == EXPECTED["tta"]["mean_text"]
    )
    ttd = re.search(r'id="time_to_decide".*?class="p90" data-seconds="([^"]*)"', html, re.S)
    assert ttd and float(ttd.group(1)) == EXPECTED["ttd"]["p90"]
    assert re.search(r'id="auto_close".*?>20%<', html, re.S)
    assert re.search(r'id="agreement".*?>33%<', html, re.S)
    assert html.count("<svg") >= 7 and 'data-label="closed" data-value="3"' in html
    assert "<script" not in html.split("</head>", 1)[1]  # charts are SVG, no inline script
    assert web.client.get("/dashboard?range=1y").status_code == 422


def test_the_queue_event_stream_sends_the_rows_and_then_ends(web: Web) -> None:
    web.client.app.state.sse_max_seconds = 0.3  # type: ignore[attr-defined]
    web.client.app.state.sse_check_seconds = 0.05  # type: ignore[attr-defined]
    case_id = ingest_one(
        web.settings,
        {"source": "test", "source_ref": "sse-1", "title": "Beacon <b>", "severity": "high"},
    )
    login(web.client, web.tokens["analyst"])
    resp = web.client.get("/queue/events")
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e.startswith("event: rows")]
    assert events, resp.text[:300]
    data = "\n".join(line[6:] for line in events[0].split("\n") if line.startswith("data: "))
    assert f'data-case-id="{case_id}"' in data and "Beacon &lt;b&gt;" in data
    web.client.cookies.clear()
    assert web.client.get("/queue/events", follow_redirects=False).status_code == 303


def test_workflows_page_draws_svg_graphs_and_history_highlights_the_run_path(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    login(web.client, web.tokens["analyst"])
    page = web.client.get("/workflows").text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="graph"' in page
    assert 'data-node="await_approval"' in page and 'data-source="draft_note"' in page
    history = web.client.get(f"/cases/{case_id}/history").text
    taken = set(re.findall(r'<g class="node[^"]* taken" data-node="([^"]+)"', history))
    assert {"gather_evidence", "map_attack", "draft_note", "await_approval"} <= taken
    assert "finalize_case" not in taken  # the run waits at the approval: it has not finalized yet
    assert re.search(
        r'class="edge taken" d="[^"]*" marker-end="url\(#arrow\)" data-source="draft_note" '
        r'data-target="await_approval"',
        history,
    )
