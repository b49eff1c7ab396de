"""A small, safe Markdown renderer for case notes.

Note bodies are model output written from attacker-controlled alert text, so nothing in them is trusted:
every piece of text is HTML-escaped *before* any tag is added, and the only tags ever produced are the
ones this module writes (headings, paragraphs, lists, block quotes, code, emphasis, links). Raw HTML in
the input stays visible text. Links are kept only for ``http``/``https`` URLs; anything else
(``javascript:``, ``data:``, relative URLs) is shown as plain text. Evidence citations ``[E3]`` (and
``[E1, E2]``) become links to the evidence item on the page: ``<a href="#evidence-E3">``.

Supported: ATX headings (shifted one level down, the page owns ``<h1>``), paragraphs, ``-``/``*``/``+``
and numbered lists (flat), ``>`` block quotes, fenced code blocks, inline code, ``**bold**``,
``*italics*`` / ``_italics_``, ``[text](https://...)`` links, backslash escapes, ``---`` rules.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlsplit

from markupsafe import Markup

MAX_DEPTH = 4
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(.*)$")
_ORDERED = re.compile(r"^[ \t]*\d{1,9}[.)][ \t]+(.*)$")
_QUOTE = re.compile(r"^[ \t]{0,3}>[ \t]?(.*)$")
_FENCE = re.compile(r"^[ \t]{0,3}(```+|~~~+)")
_RULE = re.compile(r"^[ \t]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_EVIDENCE = r"E\d{1,4}"
_INLINE = re.compile(
    r"(?P<esc>\\[\\`*_\[\]{}()<>#+\-.!|~])"
    r"|(?P<tick>`+)(?P<code>.+?)(?P=tick)"
    rf"|\[(?P<ev>{_EVIDENCE}(?:[ \t]*,[ \t]*{_EVIDENCE})*)\]"
    r"|\[(?P<ltext>[^\[\]\n]{1,500})\]\((?P<lurl>[^()\s]{1,2000})\)"
    r"|(?P<strong>\*\*)(?P<stext>\S(?:.*?\S)?)\*\*"
    r"|(?<![A-Za-z0-9_])__(?P<ustext>\S(?:.*?\S)?)__(?![A-Za-z0-9_])"
    r"|\*(?P<etext>[^*\s](?:[^*]*?[^*\s])?)\*"
    r"|(?<![A-Za-z0-9_])_(?P<uetext>[^_\s](?:[^_]*?[^_\s])?)_(?![A-Za-z0-9_])"
)


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


def render_inline(text: str, depth: int = 0) -> str:
    """Inline Markdown of one block's text, as safe HTML."""
    if depth > MAX_DEPTH:
        return escape(text)
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[pos : m.start()]))
        pos = m.end()
        if m.group("esc"):
            out.append(escape(m.group("esc")[1]))
        elif m.group("tick"):
            out.append(f"<code>{escape(m.group('code').strip())}</code>")
        elif m.group("ev"):
            labels = [x.strip() for x in m.group("ev").split(",")]
            out.append("[" + ", ".join(evidence_link(x) for x in labels) + "]")
        elif m.group("ltext") is not None:
            url = safe_url(m.group("lurl"))
            label = render_inline(m.group("ltext"), depth + 1)
            if url is None:
                out.append(f"[{label}]({escape(m.group('lurl'))})")
            else:
                out.append(f'<a href="{escape(url)}" rel="noopener noreferrer nofollow">{label}</a>')
        elif m.group("strong"):
            out.append(f"<strong>{render_inline(m.group('stext'), depth + 1)}</strong>")
        elif m.group("ustext") is not None:
            out.append(f"<strong>{render_inline(m.group('ustext'), depth + 1)}</strong>")
        elif m.group("etext") is not None:
            out.append(f"<em>{render_inline(m.group('etext'), depth + 1)}</em>")
        elif m.group("uetext") is not None:
            out.append(f"<em>{render_inline(m.group('uetext'), depth + 1)}</em>")
    out.append(escape(text[pos:]))
    return "".join(out)


def _blocks(lines: list[str], depth: int) -> list[str]:
    html: list[str] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            body: list[str] = []
            i += 1
            while i < n and not lines[i].lstrip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end)
            html.append("<pre><code>" + escape("\n".join(body)) + "</code></pre>")
            continue
        heading = _HEADING.match(line)
        if heading:
            level = min(len(heading.group(1)) + 1, 6)
            html.append(f"<h{level}>{render_inline(heading.group(2), 0)}</h{level}>")
            i += 1
            continue
        if _RULE.match(line):
            html.append("<hr>")
            i += 1
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while i < n and (q := _QUOTE.match(lines[i])):
                quoted.append(q.group(1))
                i += 1
            inner = (
                "".join(_blocks(quoted, depth + 1))
                if depth < MAX_DEPTH
                else f"<p>{render_inline(' '.join(quoted))}</p>"
            )
            html.append(f"<blockquote>{inner}</blockquote>")
            continue
        for pattern, tag in ((_BULLET, "ul"), (_ORDERED, "ol")):
            if pattern.match(line):
                items: list[str] = []
                while i < n and lines[i].strip():
                    item = pattern.match(lines[i])
                    if item:
                        items.append(item.group(1))
                    elif items and lines[i][:1] in (" ", "\t"):
                        items[-1] += " " + lines[i].strip()  # a continuation line
                    else:
                        break
                    i += 1
                html.append(f"<{tag}>" + "".join(f"<li>{render_inline(x)}</li>" for x in items) + f"</{tag}>")
                break
        else:
            para: list[str] = []
            while i < n and lines[i].strip():
                if para and (
                    _HEADING.match(lines[i])
                    or _FENCE.match(lines[i])
                    or _BULLET.match(lines[i])
                    or _QUOTE.match(lines[i])
                ):
                    break
                para.append(lines[i].strip())
                i += 1
            html.append("<p>" + render_inline("\n".join(para)) + "</p>")
    return html


def render_markdown(text: str | None) -> Markup:
    """``text`` as safe HTML (a ``Markup``, so templates do not escape it twice)."""
    if not text:
        return Markup("")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").split("\n")
    return Markup("\n".join(_blocks(lines, 0)))
