"""The analyst's UI in real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Tab, UiServer, artifacts_dir, log_in
from tests.web.helpers import HOSTILE_TITLE
from tests.workflows.triage_helpers import ingest_one

pytestmark = pytest.mark.browser

# Everything the live DOM must not hold, whatever an alert said.
INERT_CHECK = """() => {
  const bad = [];
  for (const s of document.querySelectorAll('script')) {
    if (s.getAttribute('src') !== '/static/app.js' || s.textContent.trim()) {
      bad.push('script: ' + s.outerHTML);
    }
  }
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.toLowerCase().startsWith('on')) bad.push('handler: ' + el.outerHTML.slice(0, 200));
      const isUrl = ['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name.toLowerCase());
      if (isUrl && /^\\s*(javascript|data|vbscript):/i.test(a.value)) {
        bad.push('url: ' + el.outerHTML.slice(0, 200));
      }
    }
  }
  // the server's own drawings are svg.graph / svg.chart (scriptless, no style); any other svg is foreign
  const foreign = 'iframe, object, embed, svg:not(.graph):not(.chart), img, style, base, meta[http-equiv]';
  for (const el of document.querySelectorAll(foreign)) {
    bad.push('element: ' + el.outerHTML.slice(0, 200));
  }
  if (window.__pwned !== undefined) bad.push('pwned: ' + window.__pwned);
  return bad;
}"""


def assert_inert(tab: Tab) -> None:
    assert tab.page.evaluate(INERT_CHECK) == []
    assert tab.dialogs == []


def test_log_in_and_see_the_queue_update_itself(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    page.goto(ui_server.base + "/")
    assert "/login" in page.url
    log_in(tab, ui_server)
    rows = page.locator("#queue-rows tr")
    assert "awaiting_approval" in rows.first.inner_text()  # cases awaiting approval come first
    page.screenshot(path=str(artifacts_dir() / "ui-queue.png"), full_page=True)
    page.evaluate("window.__stay = 1")
    new_case = ingest_one(
        ui_server.settings,
        {
            "source": "test",
            "source_ref": "live-1",
            "title": "Live case",
            "severity": "high",
            "rule": {"id": "r-live"},
        },
    )
    page.wait_for_selector(f'#queue-rows tr[data-case-id="{new_case}"]', timeout=15_000)
    assert page.evaluate("window.__stay") == 1  # it appeared without a reload
    assert_inert(tab)
    assert tab.errors == []


def test_open_the_first_case_edit_the_note_and_approve(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    log_in(tab, ui_server)
    page.locator("#queue-rows tr").first.locator("td.title a").click()
    case_id = ui_server.cases["first"]
    page.wait_for_url(f"{ui_server.base}/cases/{case_id}")
    assert page.locator("#note-status").inner_text() == "draft"
    page.locator("#note-body a.evref").first.click()  # a citation leads to its evidence item
    assert page.url.endswith("#evidence-E1")
    page.screenshot(path=str(artifacts_dir() / "ui-case.png"), full_page=True)

    page.click("#edit-link")
    editor = page.locator("#note-editor")
    draft = editor.input_value()
    assert draft.startswith("# Case note:")
    edited = draft.replace(
        "## Summary\n\n", "## Summary\n\nAnalyst: confirmed with the host owner [E1].\n\n", 1
    )
    editor.fill(edited)
    page.click("#preview")
    diff = page.locator("pre.diff .add")
    assert "+Analyst: confirmed with the host owner [E1]." in diff.all_inner_texts()
    page.click("#save")
    page.wait_for_selector("#outcome")
    assert "completed" in page.locator("#outcome").inner_text()
    # status rules: an approved true positive is escalated, with the edited revision approved
    assert page.locator("#case-status").inner_text() == "escalated"
    assert page.locator("#note-status").inner_text() == "approved"
    assert "Analyst: confirmed with the host owner" in page.locator("#note-body").inner_text()
    page.click("nav.tabs a[href$='/history']")
    revision = page.locator("li.revision").first
    assert "Revision 2 by alice (analyst)" in " ".join(revision.inner_text().split())
    assert tab.errors == []


def test_reject_a_draft_with_a_reason(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    log_in(tab, ui_server)
    case_id = ui_server.cases["reject"]
    page.goto(f"{ui_server.base}/cases/{case_id}")
    page.click("#reject")  # no reason: refused, nothing decided
    assert "needs a reason" in page.locator("#decision-error").inner_text()
    page.fill("#reason", "The host is a build server; say so in the summary.")
    page.click("#reject")
    page.wait_for_selector("#outcome")
    # rejected: the run redrafted at once and waits again, the case is back to awaiting approval
    assert page.locator("#case-status").inner_text() == "awaiting_approval"
    assert page.locator("#note-status").inner_text() == "draft"
    page.click("nav.tabs a[href$='/history']")
    history = page.locator("#audit").inner_text()
    assert "The host is a build server; say so in the summary." in page.content()
    assert "note.decided" in history
    assert tab.errors == []


def test_override_a_technique(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    log_in(tab, ui_server)
    case_id = ui_server.cases["override"]
    page.goto(f"{ui_server.base}/cases/{case_id}")
    page.fill("#override-techniques", "T9999")
    page.click("#approve")
    assert "T9999" in page.locator("#decision-error").inner_text()  # validated against the catalog
    page.fill("#override-techniques", "T1105")
    page.select_option("#override-verdict", "benign_positive")
    page.click("#approve")
    page.wait_for_selector("#outcome")
    row = page.locator("#techniques tr.source-analyst")
    assert "T1105" in row.inner_text() and "Ingress Tool Transfer" in row.inner_text()
    assert "Command and Control" in row.inner_text()
    labels = page.locator("#analyst-labels").inner_text()
    assert "benign_positive" in labels and "T1105" in labels
    assert tab.errors == []


def test_hostile_alert_renders_inert_on_every_page(tab: Tab, ui_server: UiServer) -> None:
    page = tab.page
    log_in(tab, ui_server)
    case_id = ui_server.cases["hostile"]
    for path in (
        "/",
        f"/cases/{case_id}",
        f"/cases/{case_id}/history",
        "/workflows",
        f"/cases/{case_id}/edit",
    ):
        page.goto(ui_server.base + path)
        page.wait_for_load_state("load")
        assert_inert(tab)
    page.goto(f"{ui_server.base}/cases/{case_id}")
    assert page.locator("#case-title").inner_text() == HOSTILE_TITLE  # shown as text, verbatim
    for details in page.locator("details").all():
        details.evaluate("d => d.open = true")
    assert_inert(tab)
    # an analyst's edit with hostile Markdown: previewed and saved, still inert
    page.click("#edit-link")
    page.fill(
        "#note-editor",
        "# <script>window.__pwned=3</script>\n\n"
        "[click](javascript:alert('x')) <img src=x onerror=alert(1)>\n\n"
        "[ok](https://attack.mitre.org/) [E1]\n",
    )
    page.click("#preview")
    assert_inert(tab)
    assert page.locator("#preview-body a[href='https://attack.mitre.org/']").count() == 1
    page.click("#save")
    page.wait_for_selector("#outcome")
    for path in (f"/cases/{case_id}", f"/cases/{case_id}/history", "/"):
        page.goto(ui_server.base + path)
        for details in page.locator("details").all():
            details.evaluate("d => d.open = true")
        assert_inert(tab)
    assert tab.errors == []
    # the checks themselves see an injected element and a dialog (negative control)
    page.evaluate("document.body.appendChild(document.createElement('iframe'))")
    assert page.evaluate(INERT_CHECK) != []
    page.evaluate("window.alert('control')")
    assert tab.dialogs == ["alert: control"]
