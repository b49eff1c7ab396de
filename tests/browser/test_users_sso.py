"""People (issue 22): password login and OpenID Connect single sign-on in real Chromium.

The OpenID provider is real: the npm package ``oidc-provider`` (tests/oidc) under node, with its own
login and consent pages. The client is socflow's Authlib code (code flow, PKCE, state, nonce, JWKS).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from socflow import users
from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.settings import Settings
from socflow.tables import User
from tests.browser.conftest import OidcProvider, Tab, artifacts_dir, running_ui
from tests.web.helpers import make_web_app, web_settings

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-9"


@dataclass
class SsoUi:
    base: str
    settings: Settings
    provider: OidcProvider

    def user(self, username: str) -> User | None:
        with session_factory(make_engine(self.settings.database.url))() as session:
            return session.scalar(select(User).where(User.username == username))


@pytest.fixture(scope="module")
def sso_ui(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[SsoUi]:
    tmp = tmp_path_factory.mktemp("sso-ui")
    shutil.copyfile(_sqlite_template, tmp / "socflow.db")
    base = web_settings(f"sqlite:///{tmp / 'socflow.db'}", tmp)
    settings = base.model_copy(
        update={
            "oidc": base.oidc.model_validate(
                {
                    "enabled": True,
                    "issuer": oidc_provider.issuer,
                    "client_id": oidc_provider.client_id,
                    "client_secret": oidc_provider.client_secret,
                    "redirect_url": oidc_provider.redirect_url,
                    "scopes": ["openid", "profile", "groups"],
                    "role_claim": "groups",
                    "role_map": {"soc-analysts": "analyst", "soc-admins": "admin"},
                }
            )
        }
    )
    factory = session_factory(make_engine(settings.database.url))
    with factory() as session, session.begin():
        users.create_user(session, "carol", Role.analyst, PASSWORD)
        users.create_user(session, "dora", Role.analyst, PASSWORD)
        users.disable_user(session, "dora")
    with running_ui(make_web_app(settings), oidc_provider.ui_port) as url:
        yield SsoUi(url, settings, oidc_provider)


@pytest.fixture
def fresh(tab: Tab) -> Tab:
    tab.page.context.clear_cookies()  # no socflow session and no provider session from another test
    return tab


def _provider_sign_in(tab: Tab, ui: SsoUi, login: str) -> None:
    """The provider's own pages: its login form (any password), then its consent page."""
    page = tab.page
    page.wait_for_url(ui.provider.issuer + "/interaction/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    consent = page.locator("input[name=prompt][value=consent]")
    deadline = time.monotonic() + 15
    while page.url.startswith(ui.provider.issuer) and time.monotonic() < deadline:
        if consent.count():
            page.click("button[type=submit]")  # Continue
            return
        page.wait_for_timeout(100)


def test_password_login_ends_on_the_queue(fresh: Tab, sso_ui: SsoUi) -> None:
    page = fresh.page
    page.goto(sso_ui.base + "/")
    assert "/login" in page.url
    page.fill("#username", "carol")
    page.fill("#password", PASSWORD)
    page.click("#password-login button[type=submit]")
    page.wait_for_url(sso_ui.base + "/")
    assert page.locator(".who").inner_text().split() == ["carol", "analyst"]
    assert page.locator("h1").first.inner_text() != "Log in"
    page.screenshot(path=str(artifacts_dir() / "login-password-queue.png"))
    assert not [e for e in fresh.errors if "Content Security Policy" in e]


def test_a_disabled_local_user_cannot_log_in(fresh: Tab, sso_ui: SsoUi) -> None:
    page = fresh.page
    page.goto(sso_ui.base + "/login")
    page.fill("#username", "dora")
    page.fill("#password", PASSWORD)
    page.click("#password-login button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Unknown user or wrong password."
    page.goto(sso_ui.base + "/")
    assert page.url.startswith(sso_ui.base + "/login")


def test_oidc_login_against_the_real_provider_ends_on_the_queue_as_analyst(fresh: Tab, sso_ui: SsoUi) -> None:
    page = fresh.page
    page.goto(sso_ui.base + "/")
    assert "/login" in page.url
    with page.expect_request(lambda r: r.url.startswith(sso_ui.provider.issuer + "/auth")) as asked:
        page.click("#sso")
    query = parse_qs(urlsplit(asked.value.url).query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43 and query["nonce"][0] and query["state"][0]
    assert query["redirect_uri"] == [sso_ui.provider.redirect_url]
    with page.expect_request(lambda r: r.url.startswith(sso_ui.provider.redirect_url)) as back:
        _provider_sign_in(fresh, sso_ui, "ana")
    page.wait_for_url(sso_ui.base + "/")
    assert page.locator(".who").inner_text().split() == ["ana", "analyst"]  # groups soc-analysts -> analyst
    page.screenshot(path=str(artifacts_dir() / "login-sso-queue.png"))
    row = sso_ui.user("ana")
    assert row is not None and row.role == "analyst" and row.password_hash is None
    assert row.oidc_issuer == sso_ui.provider.issuer and row.oidc_subject == "ana"
    # the session is socflow's server-side one: the REST API answers the same browser
    assert page.request.get(sso_ui.base + "/api/v1/cases").status == 200
    # log out; the provider's answer replayed in this browser is refused (its state was spent)
    page.click("form[action='/logout'] button")
    page.wait_for_url(sso_ui.base + "/login")
    page.goto(back.value.url)
    refused = page.locator("#sso-refused").inner_text()
    assert refused.startswith("This sign-in is not the one this browser started")
    page.goto(sso_ui.base + "/")
    assert page.url.startswith(sso_ui.base + "/login")


def test_an_unmapped_group_is_refused_with_a_clear_page(fresh: Tab, sso_ui: SsoUi) -> None:
    page = fresh.page
    page.goto(sso_ui.base + "/login")
    page.click("#sso")
    _provider_sign_in(fresh, sso_ui, "mallory")  # groups: marketing, mapped to nothing
    page.wait_for_url(sso_ui.base + "/login/oidc/callback**")
    assert page.locator("h1").inner_text() == "Sign-in refused"
    message = page.locator("#sso-refused").inner_text()
    assert "carries no 'groups' value that socflow maps to a role" in message
    assert sso_ui.user("mallory") is None
    page.goto(sso_ui.base + "/")
    assert page.url.startswith(sso_ui.base + "/login")


def test_a_disabled_sso_account_is_refused(fresh: Tab, sso_ui: SsoUi) -> None:
    page = fresh.page
    page.goto(sso_ui.base + "/login")
    page.click("#sso")
    _provider_sign_in(fresh, sso_ui, "ana")
    page.wait_for_url(sso_ui.base + "/")
    with session_factory(make_engine(sso_ui.settings.database.url))() as session, session.begin():
        users.disable_user(session, "ana")
    page.goto(sso_ui.base + "/")
    assert page.url.startswith(sso_ui.base + "/login")  # the open session ended
    page.click("#sso")  # the provider still knows ana: it may skip its pages
    page.wait_for_url(
        lambda url: (
            url.startswith(sso_ui.base + "/login/oidc/callback")
            or url.startswith(sso_ui.provider.issuer + "/interaction/")
        )
    )
    if page.url.startswith(sso_ui.provider.issuer):
        _provider_sign_in(fresh, sso_ui, "ana")
        page.wait_for_url(sso_ui.base + "/login/oidc/callback**")
    assert page.locator("#sso-refused").inner_text() == "this socflow account is disabled"
