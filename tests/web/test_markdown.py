"""The note renderer escapes first and adds only its own tags."""

from __future__ import annotations

import re

import pytest

from socflow.web.markdown import render_markdown, safe_url

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD4=)",
    '[x](http://a"onmouseover=alert(1))',
    "**<b onmouseover=alert(1)>bold</b>**",
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "> <iframe src=javascript:alert(1)>",
    "- <a href=javascript:alert(1)>x</a>",
    "# <style>body{}</style>",
    "[E1](javascript:alert(1))",
]
ALLOWED_TAGS = {
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "ul",
    "ol",
    "li",
    "blockquote",
    "pre",
    "code",
    "strong",
    "em",
    "a",
    "hr",
}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_inert(text: str) -> None:
    html = str(render_markdown(text))
    tags = set(re.findall(r"<([a-zA-Z0-9]+)", html))
    assert tags <= ALLOWED_TAGS, html
    assert "javascript:" not in re.sub(
        r"&[a-z]+;|&#x?[0-9a-f]+;", "", " ".join(re.findall(r'href="([^"]*)"', html))
    )
    for attr in re.findall(r"<[a-z0-9]+([^>]*)>", html):
        names = re.findall(r"\s([a-zA-Z-]+)=", attr)
        assert set(names) <= {"href", "class", "rel"}, html


def test_markdown_structure_and_evidence_links() -> None:
    text = (
        "# Case note: PowerShell\n\n> **FALLBACK NOTE**: built from the evidence.\n\n## Summary\n\n"
        "Encoded *PowerShell* ran [E1, E2] and `whoami`.\n\n- one [E3]\n- two\n\n1. first\n2. second\n\n"
        "See [the docs](https://attack.mitre.org/techniques/T1059/001/) and rule\\_tag true_positive.\n"
    )
    html = str(render_markdown(text))
    assert "<h2>Case note: PowerShell</h2>" in html
    assert (
        "<blockquote>\n<p><strong>FALLBACK NOTE</strong>: built from the evidence.</p>\n</blockquote>" in html
    )
    assert (
        '[<a class="evref" href="#evidence-E1">E1</a>, <a class="evref" href="#evidence-E2">E2</a>]' in html
    )
    assert '<a class="evref" href="#evidence-E3">E3</a>' in html
    assert "<em>PowerShell</em>" in html and "<code>whoami</code>" in html
    assert "<ul>\n<li>one" in html and "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert (
        '<a href="https://attack.mitre.org/techniques/T1059/001/" rel="noopener noreferrer nofollow">' in html
    )
    assert "rule_tag true_positive" in html  # no intraword emphasis


def test_only_http_links() -> None:
    assert safe_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in (
        "javascript:alert(1)",
        "data:text/html,x",
        "/relative",
        "//evil.org",
        "vbscript:x",
        "http:///x",
    ):
        assert safe_url(bad) is None
    assert "<a" not in str(render_markdown("[x](/relative)"))


def test_nested_lists_stay_nested() -> None:
    html = str(render_markdown("- host WS1\n  - user alice [E2]\n    - process powershell.exe\n- host WS2\n"))
    flat = html.replace("\n", "")
    assert flat.count("<ul>") == 3
    assert '<li>user alice [<a class="evref" href="#evidence-E2">E2</a>]<ul><li>process' in flat


def test_raw_html_and_images_stay_text() -> None:
    html = str(
        render_markdown("<b>x</b>\n\n<div onclick=alert(1)>y</div>\n\n![a](https://example.org/p.png)")
    )
    assert "<b>" not in html and "<div" not in html and "<img" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
