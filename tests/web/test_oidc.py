"""Single sign-on's checks that need no provider: settings, role mapping, and a callback that this
browser did not start (the full flow runs against a real provider in tests/browser/test_users_sso.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from socflow.auth import Role
from socflow.errors import ConfigError
from socflow.settings import OidcSettings, Settings
from socflow.web.oidc import map_role
from tests.web.helpers import make_web_app, web_settings

ON = {
    "enabled": True,
    "issuer": "http://127.0.0.1:9/",
    "client_id": "socflow",
    "redirect_url": "http://127.0.0.1:8000/login/oidc/callback",
    "role_map": {"soc-admins": "admin", "soc-analysts": "analyst"},
}


def test_sso_is_off_by_default_and_complete_when_on() -> None:
    assert Settings().oidc.enabled is False
    with pytest.raises(ValueError, match="issuer"):
        OidcSettings.model_validate({**ON, "issuer": ""})
    with pytest.raises(ValueError, match="role_map is empty"):
        OidcSettings.model_validate({**ON, "role_map": {}})
    with pytest.raises(ValueError, match="https"):
        OidcSettings.model_validate({**ON, "issuer": "http://idp.example.com"})
    with pytest.raises(ValueError):
        OidcSettings.model_validate({**ON, "role_map": {"x": "superuser"}})
    assert OidcSettings.model_validate({**ON, "scopes": "openid groups"}).scopes == ["openid", "groups"]


def test_sso_settings_from_the_environment_keep_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCFLOW_OIDC__ENABLED", "true")
    monkeypatch.setenv("SOCFLOW_OIDC__ISSUER", "https://idp.example.com/realms/soc")
    monkeypatch.setenv("SOCFLOW_OIDC__CLIENT_ID", "socflow")
    monkeypatch.setenv("SOCFLOW_OIDC__CLIENT_SECRET", "very-secret-client-value")
    monkeypatch.setenv("SOCFLOW_OIDC__REDIRECT_URL", "https://soc.example.com/login/oidc/callback")
    monkeypatch.setenv("SOCFLOW_OIDC__ROLE_MAP", '{"soc-analysts": "analyst"}')
    monkeypatch.setenv("SOCFLOW_OIDC__SCOPES", "openid,profile,groups")
    settings = Settings()
    assert settings.oidc.role_map == {"soc-analysts": "analyst"}
    assert settings.oidc.scopes == ["openid", "profile", "groups"]
    assert "very-secret-client-value" not in repr(settings) + str(settings)
    monkeypatch.setenv("SOCFLOW_OIDC__ROLE_MAP", "{}")
    from socflow.settings import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="SOCFLOW_OIDC"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_the_first_mapped_value_in_the_mappings_order_gives_the_role() -> None:
    settings = OidcSettings.model_validate(ON)
    assert map_role(settings, {"groups": ["staff", "soc-analysts", "soc-admins"]}) is Role.admin
    assert map_role(settings, {"groups": "soc-analysts"}) is Role.analyst  # a single string counts
    assert map_role(settings, {"groups": ["marketing"]}) is None
    assert map_role(settings, {"groups": {"soc-admins": True}}) is None  # not a list: ignored
    assert map_role(settings, {"roles": ["soc-admins"]}) is None  # another claim than role_claim
    other = OidcSettings.model_validate({**ON, "role_claim": "roles"})
    assert map_role(other, {"roles": ["soc-analysts"]}) is Role.analyst


def _sso_app(sqlite_url: str, tmp_path: Path) -> TestClient:
    base = web_settings(sqlite_url, tmp_path)
    settings = base.model_copy(update={"oidc": OidcSettings.model_validate(ON)})
    return TestClient(make_web_app(settings))


def test_a_callback_this_browser_did_not_start_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    client = _sso_app(sqlite_url, tmp_path)
    login = client.get("/login")
    assert 'id="sso"' in login.text and "/login/oidc?next=" in login.text
    forged = client.get("/login/oidc/callback?code=stolen-code&state=attacker-state", follow_redirects=False)
    assert forged.status_code == 400
    assert "not the one this browser started" in forged.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still not signed in


def test_sso_pages_answer_404_when_sso_is_off(sqlite_url: str, tmp_path: Path) -> None:
    client = TestClient(make_web_app(web_settings(sqlite_url, tmp_path)))
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_an_unreachable_provider_is_a_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    client = _sso_app(sqlite_url, tmp_path)  # the issuer is 127.0.0.1:9 (discard): nothing answers
    resp = client.get("/login/oidc", follow_redirects=False)
    assert resp.status_code == 502
    assert "could not be reached" in resp.text
