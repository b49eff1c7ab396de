"""The role matrix, generated from the app's own routes: a route added later without an entry here, or
without an ``allow(...)`` dependency, fails this test."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from socflow.api import create_app
from socflow.auth import Role
from socflow.dispatch import NullDispatcher
from socflow.settings import Settings
from tests.api.conftest import bearer, make_token
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}
_seq = itertools.count()


def _alert(ref: str | None = None) -> dict[str, Any]:
    n = next(_seq)
    return {
        "source": "roles",
        "source_ref": ref or f"r-{n}",
        "title": f"t{n}",
        "severity": "low",
        "rule": {"id": f"rule-{n}"},
        "entities": {"hosts": [f"h{n}"]},
    }


class World:
    """Fresh objects for each request that needs them (merges and moves consume their inputs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def case(self) -> int:
        return ingest_one(self.settings, _alert())

    def waiting_case(self) -> tuple[int, str]:
        case_id = self.case()
        runner = make_runner(self.settings, scripted())
        run_id = runner.start("alert_triage", case_id=case_id, actor="test")
        assert runner.advance(run_id).status.value == "awaiting_input"
        return case_id, run_id

    def failed_run(self) -> str:
        """A run that failed (its model double has no script), for ``runs/{id}/retry``."""
        from socflow.model.scripted import ScriptedModel

        runner = make_runner(self.settings, ScriptedModel([]))
        run_id = runner.start("alert_triage", case_id=self.case(), actor="test")
        assert runner.advance(run_id).status.value == "failed"
        return run_id

    def alert_id(self, client: TestClient, case_id: int) -> int:
        items = client.get(f"/api/v1/alerts?case_id={case_id}", headers=bearer(self.admin)).json()["items"]
        return int(items[0]["id"])

    admin = ""


Example = Callable[[World, TestClient], tuple[str, dict[str, Any] | None]]


def _move(w: World, c: TestClient) -> tuple[str, dict[str, Any]]:
    case_id, target = w.case(), w.case()
    return f"/api/v1/cases/{case_id}/alerts/{w.alert_id(c, case_id)}/move", {"case_id": target}


def _token(w: World, c: TestClient) -> tuple[str, None]:
    make_token(w.settings.database.url, Role.ingest)
    tokens = c.get("/api/v1/tokens", headers=bearer(w.admin)).json()
    return f"/api/v1/tokens/{max(t['id'] for t in tokens)}", None


EXAMPLES: dict[tuple[str, str], Example] = {
    ("POST", "/api/v1/alerts"): lambda w, c: ("/api/v1/alerts", _alert()),
    ("GET", "/api/v1/alerts"): lambda w, c: ("/api/v1/alerts", None),
    ("GET", "/api/v1/alerts/{alert_id}"): lambda w, c: (f"/api/v1/alerts/{w.alert_id(c, w.case())}", None),
    ("GET", "/api/v1/cases"): lambda w, c: ("/api/v1/cases?status=new", None),
    ("GET", "/api/v1/cases/{case_id}"): lambda w, c: (f"/api/v1/cases/{w.case()}", None),
    ("GET", "/api/v1/cases/{case_id}/export"): lambda w, c: (
        f"/api/v1/cases/{w.case()}/export?format=stix",
        None,
    ),
    ("PATCH", "/api/v1/cases/{case_id}"): lambda w, c: (f"/api/v1/cases/{w.case()}", {"assignee": "ana"}),
    ("POST", "/api/v1/cases/{case_id}/merge"): lambda w, c: (
        f"/api/v1/cases/{w.case()}/merge",
        {"into": w.case()},
    ),
    ("POST", "/api/v1/cases/{case_id}/alerts/{alert_id}/move"): _move,
    ("POST", "/api/v1/cases/{case_id}/decision"): lambda w, c: (
        f"/api/v1/cases/{w.waiting_case()[0]}/decision",
        {"action": "approve"},
    ),
    ("GET", "/api/v1/runs/{run_id}"): lambda w, c: (f"/api/v1/runs/{w.waiting_case()[1]}", None),
    ("POST", "/api/v1/runs/{run_id}/retry"): lambda w, c: (f"/api/v1/runs/{w.failed_run()}/retry", None),
    ("GET", "/api/v1/workflows"): lambda w, c: ("/api/v1/workflows", None),
    ("POST", "/api/v1/tokens"): lambda w, c: ("/api/v1/tokens", {"name": "soar", "role": "ingest"}),
    ("GET", "/api/v1/tokens"): lambda w, c: ("/api/v1/tokens", None),
    ("DELETE", "/api/v1/tokens/{token_id}"): _token,
    ("GET", "/api/v1/dead-letters"): lambda w, c: ("/api/v1/dead-letters", None),
    ("GET", "/api/v1/metrics/soc"): lambda w, c: ("/api/v1/metrics/soc?range=30d", None),
    ("GET", "/api/v1/outbox"): lambda w, c: ("/api/v1/outbox?status=open", None),
    ("POST", "/api/v1/outbox/retry"): lambda w, c: ("/api/v1/outbox/retry", {"ids": []}),
}


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            out.append((method.upper(), path))
    return sorted(out)


@pytest.fixture
def setup(sqlite_url: str, tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(
        database={"url": sqlite_url}, siem={"path": tmp_path / "siem.db"}, model={"backend": "scripted"}
    )
    app = create_app(settings, dispatcher=NullDispatcher())
    world = World(settings)
    world.admin = make_token(sqlite_url, Role.admin)
    tokens = {r: make_token(sqlite_url, r) for r in Role}
    with TestClient(app) as client:
        yield app, client, world, tokens


def test_every_route_declares_its_roles_and_has_an_example(setup) -> None:  # type: ignore[no-untyped-def]
    app, _, _, _ = setup
    for route in _routes(app):
        if route in PUBLIC:
            continue
        assert route in app.state.route_roles, f"{route} has no allow(...) dependency"
        assert route in EXAMPLES, f"{route}: add a request example to the role matrix"


def test_role_matrix(setup) -> None:  # type: ignore[no-untyped-def]
    app, client, world, tokens = setup
    for method, path in _routes(app):
        if (method, path) in PUBLIC:
            assert client.request(method, path).status_code == 200
            continue
        allowed = app.state.route_roles[(method, path)]
        url, body = EXAMPLES[(method, path)](world, client)
        none = client.request(method, url, json=body)
        assert none.status_code == 401, (method, path, none.text)
        for role in Role:
            url, body = EXAMPLES[(method, path)](world, client)
            r = client.request(method, url, json=body, headers=bearer(tokens[role]))
            if role in allowed:
                assert 200 <= r.status_code < 300, (method, path, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code, r.text)


def test_revoked_and_expired_tokens_are_refused(setup) -> None:  # type: ignore[no-untyped-def]
    _, client, world, tokens = setup
    ok = client.get("/api/v1/cases", headers=bearer(tokens[Role.analyst]))
    assert ok.status_code == 200
    listed = client.get("/api/v1/tokens", headers=bearer(world.admin)).json()
    analyst = next(t for t in listed if t["role"] == "analyst")
    assert client.delete(f"/api/v1/tokens/{analyst['id']}", headers=bearer(world.admin)).status_code == 200
    assert client.get("/api/v1/cases", headers=bearer(tokens[Role.analyst])).status_code == 401
    assert client.get("/api/v1/cases", headers=bearer("sf_not-a-token")).status_code == 401
    assert all("token" not in t for t in client.get("/api/v1/tokens", headers=bearer(world.admin)).json())
