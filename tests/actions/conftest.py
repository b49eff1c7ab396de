"""The browser fixtures (Debian chromium through Playwright) shared with tests/browser."""

from tests.browser.conftest import browser_context, tab  # noqa: F401  (pytest fixtures)
