"""The UI under test: the API app with the web UI mounted, a runner that redrafts with the scripted model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from socflow.api import create_app
from socflow.settings import Settings
from socflow.web import mount_web
from socflow.wiring import build_services
from tests.workflows.triage_helpers import scripted

SECRET = "test-web-secret-key-0123456789"
HOSTILE_TITLE = "<script>window.__pwned=1;alert('title')</script> Evil \"quoted\" title"
HOSTILE_DESCRIPTION = "<img src=x onerror=\"window.__pwned=2;alert('img')\"> [click](javascript:alert('md'))"
HOSTILE_URL = "javascript:alert('url')"


def web_settings(db_url: str, tmp: Path) -> Settings:
    return Settings(
        database={"url": db_url},
        siem={"path": tmp / "siem.db"},
        model={"backend": "scripted"},
        api={"secret_key": SECRET},
    )


def make_web_app(settings: Settings, *, verdict: str = "true_positive") -> FastAPI:
    """create_app + mount_web (until create_app mounts the UI itself; mount_web is idempotent)."""
    # decisions resume runs synchronously; a rejected draft is redrafted by the scripted model
    services = build_services(settings, model=scripted(verdict).with_recorder, dispatcher="null")
    return mount_web(create_app(services=services))


def hostile_alert(ref: str = "evil-1") -> dict[str, Any]:
    return {
        "source": "test",
        "source_ref": ref,
        "title": HOSTILE_TITLE,
        "severity": "high",
        "description": HOSTILE_DESCRIPTION,
        "rule": {"id": "r-evil", "name": "<b onmouseover=alert(1)>rule</b>", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": ["<svg onload=alert(1)>"], "urls": [HOSTILE_URL], "users": ["bob<script>"]},
        "raw": {"payload": "<script>alert('raw')</script>", "link": HOSTILE_URL},
    }


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: TestClient, token: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    resp = client.post(
        "/login", data={"token": token, "csrf_token": csrf_of(page.text), "next": "/"}, follow_redirects=False
    )
    assert resp.status_code == 303, resp.text
    return csrf_of(client.get("/").text)
