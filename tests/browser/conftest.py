"""A real uvicorn server with the UI on a free port, and Debian's headless Chromium driven by Playwright.

Never ``playwright install``: the browser is the system's ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from socflow.auth import Role
from socflow.settings import Settings
from tests.api.conftest import make_token
from tests.conftest import REPO_ROOT, service_missing
from tests.web.helpers import hostile_alert, make_web_app, web_settings
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted

CHROMIUM = os.environ.get("SOCFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("SOCFLOW_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def waiting_case(
    settings: Settings, ref: str, *, severity: str, title: str | None = None, **alert: Any
) -> int:
    """A case whose alert_triage run waits for the analyst (scripted model, true positive)."""
    body = {
        "source": "test",
        "source_ref": ref,
        "title": title or f"Encoded PowerShell on {ref}",
        "severity": severity,
        "rule": {"id": f"r-{ref}", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [f"WS-{ref}"]},
    } | alert
    case_id = ingest_one(settings, body)
    runner = make_runner(settings, scripted())
    result = runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    assert result.status.value == "awaiting_input", runner.get(result.run_id).error
    return case_id


@dataclass
class UiServer:
    base: str
    settings: Settings
    token: str
    cases: dict[str, int] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ui_server(_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    import uvicorn

    tmp = tmp_path_factory.mktemp("ui")
    shutil.copyfile(_sqlite_template, tmp / "socflow.db")
    settings = web_settings(f"sqlite:///{tmp / 'socflow.db'}", tmp)
    cases = {
        "first": waiting_case(settings, "first", severity="critical"),
        "reject": waiting_case(settings, "reject", severity="medium"),
        "override": waiting_case(settings, "override", severity="medium"),
    }
    hostile = hostile_alert()
    hostile["severity"] = "low"
    cases["hostile"] = waiting_case(
        settings, "evil-1", **{k: v for k, v in hostile.items() if k != "source_ref"}
    )
    token = make_token(settings.database.url, Role.analyst, name="alice")
    port = _free_port()
    config = uvicorn.Config(
        make_web_app(settings), host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the UI server did not start")
        time.sleep(0.05)
    yield UiServer(f"http://127.0.0.1:{port}", settings, token, cases)
    server.should_exit = True
    thread.join(timeout=10)


@contextlib.contextmanager
def running_ui(app: Any, port: int) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the UI server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- a real OpenID provider for single sign-on (users) ---------------------------------------------
OIDC_DIR = REPO_ROOT / "tests" / "oidc"
OIDC_CLIENT_ID = "socflow-test"
OIDC_CLIENT_SECRET = "socflow-test-client-secret-0123456789"


@dataclass(frozen=True)
class OidcProvider:
    """The npm package oidc-provider (pinned in tests/oidc/package.json) running under node; its
    client's only redirect URI is ``http://127.0.0.1:<ui_port>/login/oidc/callback``."""

    issuer: str
    ui_port: int
    client_id: str = OIDC_CLIENT_ID
    client_secret: str = OIDC_CLIENT_SECRET

    @property
    def redirect_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}/login/oidc/callback"


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        service_missing("node", "node and npm are needed to run the test OpenID provider")
    assert node is not None and npm is not None
    if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=OIDC_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            service_missing("oidc-provider", f"npm ci failed in {OIDC_DIR}: {done.stderr[-2000:]}")
    ui_port, port = _free_port(), _free_port()
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}", ui_port=ui_port)
    proc = subprocess.Popen(
        [node, "provider.js", str(port), provider.client_id, provider.client_secret, provider.redirect_url],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, name="oidc-provider-output", daemon=True).start()
    deadline = time.monotonic() + 30
    while not any(line.startswith("ready ") for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the OpenID provider did not start:\n" + "".join(lines)[-3000:])
        time.sleep(0.05)
    try:
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        service_missing("chromium", f"{CHROMIUM} not found; apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("chromium", "the playwright package is not installed; pip install playwright")
    profile = tempfile.mkdtemp(prefix="socflow-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(15_000)
            yield context
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Tab:
    page: Any
    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def tab(browser_context: Any) -> Iterator[Tab]:
    page = browser_context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield Tab(page, dialogs, errors)
    page.close()


def log_in(tab: Tab, server: UiServer) -> None:
    page = tab.page
    page.goto(server.base + "/")
    if "/login" in page.url:
        page.fill("#token", server.token)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(server.base + "/")
