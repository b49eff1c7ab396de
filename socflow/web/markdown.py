"""Case notes rendered with markdown-it-py (CommonMark), locked down for attacker-influenced text.

Note bodies are model output written from attacker-controlled alert text, so nothing in them is trusted:

- raw HTML is off: ``<script>`` and friends stay visible text (markdown-it escapes every text token);
- images are off (no ``<img>``), and so are tables; nesting is bounded by markdown-it's ``maxNesting``;
- links (and ``<https://...>`` autolinks) are kept only for absolute ``http``/``https`` URLs with a host
  (``safe_url``); any other target leaves the source text as it was; kept links get
  ``rel="noopener noreferrer nofollow"``;
- headings move one level down (the page owns ``<h1>``);
- evidence citations ``[E3]`` and ``[E1, E2]`` become links to the evidence items on the page:
  ``<a class="evref" href="#evidence-E3">E3</a>``.

Nested lists, code blocks, quotes and emphasis follow CommonMark.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markupsafe import Markup

__all__ = ["evidence_link", "render_markdown", "safe_url"]

_EVIDENCE = re.compile(r"\[(E\d{1,4}(?:[ \t]*,[ \t]*E\d{1,4})*)\]")
MAX_CHARS = 256 * 1024


def safe_url(url: str) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ord(c) < 0x21 or c in "\"'<>`\\" for c in url):
        return None
    return url


def evidence_link(label: str) -> str:
    return f'<a class="evref" href="#evidence-{label}">{label}</a>'


def _evidence_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "[":
        return False
    match = _EVIDENCE.match(state.src, state.pos)
    if match is None:
        return False
    if not silent:
        token = state.push("evidence", "", 0)
        token.meta = {"labels": [x.strip() for x in match.group(1).split(",")]}
    state.pos = match.end()
    return True


def _render_evidence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    labels = tokens[idx].meta["labels"]  # each matched E\d{1,4}: nothing to escape
    return "[" + ", ".join(evidence_link(x) for x in labels) + "]"


def _heading_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    level = min(int(tokens[idx].tag[1]) + 1, 6)
    tokens[idx].tag = f"h{level}"
    tokens[idx + 2].tag = f"h{level}"  # the matching heading_close
    return str(self.renderToken(tokens, idx, options, env))


def _link_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return str(self.renderToken(tokens, idx, options, env))


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_inline", "html_block"])
    md.validateLink = lambda url: safe_url(url) is not None  # type: ignore[method-assign]
    md.inline.ruler.before("link", "evidence", _evidence_rule)
    md.add_render_rule("evidence", _render_evidence)
    md.add_render_rule("heading_open", _heading_open)
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _build()


def render_markdown(text: str | None) -> Markup:
    """``text`` as safe HTML (a ``Markup``, so templates do not escape it twice)."""
    if not text:
        return Markup("")
    return Markup(_MD.render(text[:MAX_CHARS].replace("\x00", "")))
