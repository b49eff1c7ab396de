"""The web UI over HTTP (no browser): sessions, CSRF, roles, the decision path, stale drafts, overrides."""

from __future__ import annotations

from sqlalchemy import select

from socflow.db import make_engine, session_factory
from socflow.store import CaseStore
from socflow.tables import Approval, CaseTechnique
from socflow.web.security import COOKIE, CSP
from tests.web.conftest import Web
from tests.web.helpers import csrf_of, login
from tests.workflows.triage_helpers import prepare_waiting_cases


def approvals(url: str) -> list[Approval]:
    with session_factory(make_engine(url))() as s:
        return list(s.scalars(select(Approval)))


def test_login_sets_a_signed_httponly_lax_cookie(web: Web) -> None:
    c = web.client
    assert c.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    page = c.get("/login")
    bad = c.post("/login", data={"token": "sf_nope", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 401 and "not valid" in bad.text
    resp = c.post(
        "/login",
        data={"token": web.tokens["analyst"], "csrf_token": csrf_of(page.text), "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/"  # no open redirect
    cookie = next(v for k, v in resp.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert web.tokens["analyst"] not in cookie  # the token itself never goes into the cookie
    queue = c.get("/")
    assert queue.status_code == 200 and "analyst-alice" in queue.text
    # a tampered cookie is no session
    c.cookies.set(COOKIE, c.cookies[COOKIE][:-2] + "xx")
    assert c.get("/", follow_redirects=False).status_code == 303


def test_every_form_post_needs_the_csrf_token(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    c = web.client
    page = c.get("/login")
    assert c.post("/login", data={"token": web.tokens["analyst"]}).status_code == 403  # login CSRF too
    csrf = login(c, web.tokens["analyst"])
    assert csrf != csrf_of(page.text)  # a new token after login (no fixation)
    for path, data in (
        (f"/cases/{case_id}/decision", {"action": "approve"}),
        (f"/cases/{case_id}/assign", {}),
        (f"/cases/{case_id}/edit/preview", {"body": "x"}),
        ("/logout", {}),
    ):
        assert c.post(path, data=data).status_code == 403, path
        assert c.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    assert approvals(web.url) == []
    ok = c.post(f"/cases/{case_id}/assign", data={"csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303


def test_an_ingest_role_session_is_refused(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    c = web.client
    page = c.get("/login")
    c.post("/login", data={"token": web.tokens["ingest"], "csrf_token": csrf_of(page.text)})
    assert c.get("/").status_code == 403
    assert c.get(f"/cases/{case_id}").status_code == 403
    csrf = csrf_of(c.get("/login").text)  # the logout form still carries the session's token
    resp = c.post(f"/cases/{case_id}/decision", data={"action": "approve", "csrf_token": csrf})
    assert resp.status_code == 403
    assert approvals(web.url) == []


def test_engineer_reads_but_cannot_decide(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["engineer"])
    page = web.client.get(f"/cases/{case_id}")
    assert page.status_code == 200 and 'id="decision-form"' not in page.text
    resp = web.client.post(f"/cases/{case_id}/decision", data={"action": "approve", "csrf_token": csrf})
    assert resp.status_code == 403 and approvals(web.url) == []


def test_a_revoked_token_ends_the_session(web: Web) -> None:
    login(web.client, web.tokens["analyst"])
    with session_factory(make_engine(web.url))() as s, s.begin():
        store = CaseStore(s)
        token = next(t for t in store.list_tokens() if t.name == "analyst-alice")
        store.revoke_token(token.id, actor="test")
    assert web.client.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_the_api_accepts_the_session_only_with_the_csrf_header(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["analyst"])
    assert web.client.get(f"/api/v1/cases/{case_id}").status_code == 200
    url = f"/api/v1/cases/{case_id}/decision"
    refused = web.client.post(url, json={"action": "approve"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    resp = web.client.post(url, json={"action": "approve"}, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 200, resp.text
    assert [a.user for a in approvals(web.url)] == ["analyst-alice"]


def test_pages_carry_a_strict_csp(web: Web) -> None:
    login(web.client, web.tokens["analyst"])
    for path in ("/", "/login", "/workflows", "/static/app.js"):
        resp = web.client.get(path)
        assert resp.headers["content-security-policy"] == CSP, path
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    assert web.client.get("/").headers["cache-control"] == "no-store"


def test_a_ui_decision_goes_through_the_decision_path(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["analyst"])
    page = web.client.get(f"/cases/{case_id}")
    assert 'href="#evidence-E1"' in page.text and 'id="evidence-E1"' in page.text
    resp = web.client.post(
        f"/cases/{case_id}/decision", data={"action": "approve", "csrf_token": csrf}, follow_redirects=False
    )
    assert resp.status_code == 303
    after = web.client.get(resp.headers["location"])
    assert 'id="outcome"' in after.text and "completed" in after.text
    with session_factory(make_engine(web.url))() as s:
        store = CaseStore(s)
        assert store.get_case(case_id).status == "escalated"  # true positive approved: escalated
        assert [e.actor for e in store.list_audit(case_id=case_id, action="run.decision")] == [
            "analyst-alice"
        ]
    assert [(a.decision, a.user) for a in approvals(web.url)] == [("approve", "analyst-alice")]
    again = web.client.post(f"/cases/{case_id}/decision", data={"action": "approve", "csrf_token": csrf})
    assert again.status_code == 409 and len(approvals(web.url)) == 1


def test_reject_and_escalate_need_a_reason(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["analyst"])
    resp = web.client.post(f"/cases/{case_id}/decision", data={"action": "reject", "csrf_token": csrf})
    assert resp.status_code == 422 and "needs a reason" in resp.text
    assert approvals(web.url) == []
    data = {"action": "escalate", "reason": "Domain admin involved", "csrf_token": csrf}
    assert web.client.post(f"/cases/{case_id}/decision", data=data, follow_redirects=False).status_code == 303
    with session_factory(make_engine(web.url))() as s:
        assert CaseStore(s).get_case(case_id).status == "escalated"
    assert [(a.decision, a.comment) for a in approvals(web.url)] == [("escalate", "Domain admin involved")]


def test_a_stale_draft_says_so_and_refuses_the_decision(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    with session_factory(make_engine(web.url))() as s, s.begin():
        CaseStore(s).mark_draft_stale(case_id, actor="test", reason="alert 9 joined the case")
    csrf = login(web.client, web.tokens["analyst"])
    page = web.client.get(f"/cases/{case_id}")
    assert 'id="stale"' in page.text and 'id="approve" disabled' in page.text
    resp = web.client.post(f"/cases/{case_id}/decision", data={"action": "approve", "csrf_token": csrf})
    assert resp.status_code == 409 and "stale" in resp.text
    assert approvals(web.url) == []


def test_overrides_are_validated_and_stored_as_labels(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["analyst"])
    url = f"/cases/{case_id}/decision"
    bad = web.client.post(url, data={"action": "approve", "techniques": "T9999", "csrf_token": csrf})
    assert bad.status_code == 422 and "T9999" in bad.text
    bad = web.client.post(url, data={"action": "approve", "verdict": "evil", "csrf_token": csrf})
    assert bad.status_code == 422
    assert approvals(web.url) == []
    ok = web.client.post(
        url,
        data={
            "action": "approve",
            "verdict": "false_positive",
            "techniques": "attack.t1105, T1059.001",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with session_factory(make_engine(web.url))() as s:
        store = CaseStore(s)
        rows = s.scalars(select(CaseTechnique).where(CaseTechnique.source == "analyst")).all()
        assert sorted((t.technique_id, t.name) for t in rows) == [
            ("T1059.001", "PowerShell"),
            ("T1105", "Ingress Tool Transfer"),
        ]
        (label,) = store.list_audit(case_id=case_id, action="case.labelled")
        assert label.data["verdict"] == "false_positive" and label.data["model_verdict"] == "true_positive"
        assert store.get_case(case_id).verdict == "true_positive"  # the model's verdict is kept
    page = web.client.get(f"/cases/{case_id}")
    assert 'id="analyst-labels"' in page.text and "Ingress Tool Transfer" in page.text


def test_edit_shows_the_diff_before_saving(web: Web) -> None:
    case_id = prepare_waiting_cases(web.settings, 1)[0]
    csrf = login(web.client, web.tokens["analyst"])
    editor = web.client.get(f"/cases/{case_id}/edit")
    assert "# Case note:" in editor.text  # prefilled with the draft
    body = "# Case note: edited\n\nAnalyst summary [E1].\n"
    preview = web.client.post(f"/cases/{case_id}/edit/preview", data={"body": body, "csrf_token": csrf})
    assert '<span class="add">+# Case note: edited</span>' in preview.text
    assert '<span class="del">-# Case note:' in preview.text
    assert approvals(web.url) == []  # nothing saved by the preview
    save = web.client.post(
        f"/cases/{case_id}/decision",
        data={"action": "edit", "body": body, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert save.status_code == 303
    history = web.client.get(f"/cases/{case_id}/history")
    assert 'Revision 2</strong> by <span class="author">analyst-alice</span>' in history.text
    assert "note.decided" in history.text and 'id="model-calls"' in history.text
    assert '<details class="model-call">' in history.text  # collapsed prompt and output


def test_queue_orders_filters_and_assigns(web: Web) -> None:
    waiting = prepare_waiting_cases(web.settings, 2)
    csrf = login(web.client, web.tokens["analyst"])
    web.client.post(f"/cases/{waiting[0]}/decision", data={"action": "approve", "csrf_token": csrf})
    rows = web.client.get("/queue/rows").text
    assert rows.index(f'data-case-id="{waiting[1]}"') < rows.index(f'data-case-id="{waiting[0]}"')
    assert f'data-case-id="{waiting[0]}"' in web.client.get("/queue/rows?status=escalated").text
    assert f'data-case-id="{waiting[0]}"' not in web.client.get("/queue/rows?status=awaiting_approval").text
    web.client.post(f"/cases/{waiting[1]}/assign", data={"csrf_token": csrf, "next": "/"})
    mine = web.client.get("/queue/rows?assignee=me").text
    assert f'data-case-id="{waiting[1]}"' in mine and f'data-case-id="{waiting[0]}"' not in mine
    assert "analyst-alice" in mine


def test_workflows_page_lists_graphs_and_runs(web: Web) -> None:
    prepare_waiting_cases(web.settings, 1)
    login(web.client, web.tokens["analyst"])
    page = web.client.get("/workflows")
    assert 'id="workflow-alert_triage"' in page.text
    assert "await_approval" in page.text and 'class="mermaid-source"' in page.text
    assert "awaiting_input" in page.text
