"""Is a note sentence grounded in the evidence it cites? Concrete tokens, not verbs, decide.

A sentence's concrete tokens — URLs, emails, file paths, ``DOMAIN\\user`` names, IPs, hashes, host and
file names, times and dates, numbers, command fragments, technique ids, capitalised names, and words that
only this case's evidence uses — must each appear in the text of the evidence items it cites. Both sides
are normalised first: lower case, refanged (``hxxp``, ``[.]``), one path separator. The verb is not
judged: "the attacker disabled Defender [E1]" is grounded when E1 names Defender.

    tokens = concrete_tokens(sentence, case_vocabulary(all_evidence_texts))
    missing = ungrounded_tokens(sentence, [cited texts], case_vocab=...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tools.notes.vocabulary import COMMON, ENTITY_KEYWORDS

CITATION = re.compile(r"\[\s*[EA]\d+(?:\s*,\s*[EA]\d+)*\s*\]")
_REFANG = [
    (re.compile(r"[\[\(\{]\.[\]\)\}]"), "."),
    (re.compile(r"[\[\(\{]:[\]\)\}]"), ":"),
    (re.compile(r"[\[\(\{]@[\]\)\}]"), "@"),
    (re.compile(r"\bhxxp", re.IGNORECASE), "http"),
    (re.compile(r"\bfxp\b", re.IGNORECASE), "ftp"),
]
_TOKEN = re.compile(
    r"""
    (?P<quoted>"[^"]{3,120}"|`[^`]{2,120}`)
    |(?P<url>[a-z][a-z0-9+.-]{1,9}://[^\s"'<>]+)
    |(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    |(?P<path>(?:[a-z]:[\\/]|\\\\|//)[^\s,;"'<>|]*|(?<![\w.])/[\w.$-]+(?:/[\w.$-]*)*)
    |(?P<account>[\w.-]+\\[\w.$-]+)
    |(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b)
    |(?P<hex>\b0x[0-9a-f]+\b|\b[0-9a-f]{32}\b|\b[0-9a-f]{40}\b|\b[0-9a-f]{64}\b)
    |(?P<technique>\bt\d{4}(?:\.\d{3})?\b)
    |(?P<datetime>\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2})?)?|\b\d{1,2}:\d{2}(?::\d{2})?\b)
    |(?P<number>\b\d+(?:\.\d+)?\b)
    |(?P<dotted>\.?[\w$-]+(?:\.[\w$-]+)+|\.[a-z][\w]{1,9}\b)
    |(?P<flag>(?<![\w-])--?[a-z][\w-]*)
    |(?P<word>[\w$&'-]+)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_PROGRAM_EXTENSIONS = frozenset(["exe", "dll", "com", "scr", "ps1", "bat", "cmd", "vbs", "js", "sh", "py"])
_TRAILING = ".,;:)]}'\"!?"
_EVIDENCE_WORD = re.compile(r"[\w-]+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")


def refang(text: str) -> str:
    for pattern, repl in _REFANG:
        text = pattern.sub(repl, text)
    return text


def normalize(text: str) -> str:
    """Lower case, refanged, one path separator (``/`` and ``\\`` both become ``\\``), quotes unified."""
    return refang(text).lower().replace("/", "\\").replace("`", "'").replace('"', "'")


def strip_citations(text: str) -> str:
    return CITATION.sub(" ", text)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # normalised


def case_vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Words of the case's evidence that are not generic: a sentence using one must cite where it is."""
    words: set[str] = set()
    for text in texts:
        for word in _EVIDENCE_WORD.findall(normalize(text)):
            if len(word) >= 3 and not word.isdigit() and word.strip("-") not in COMMON:
                words.add(word.strip("-"))
    return frozenset(words)


def _is_name(word: str) -> bool:
    """Capitalised, CamelCase, ALLCAPS, or with a digit or underscore: looks like a name, not prose."""
    return (
        word[:1].isupper()
        or any(c.isupper() for c in word[1:])
        or any(c.isdigit() for c in word)
        or "_" in word
        or "$" in word
    )


def concrete_tokens(sentence: str, case_vocab: frozenset[str] = frozenset()) -> list[Token]:
    """The tokens of ``sentence`` (citations removed) that the cited evidence must contain."""
    text = refang(strip_citations(sentence))
    out: list[Token] = []
    previous = ""
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "word"
        raw = match.group(0)
        if kind == "quoted":
            raw = raw[1:-1]
        raw = raw.rstrip(_TRAILING) if kind != "quoted" else raw
        if kind == "word":
            word = raw.removesuffix("'s").strip("'-")
            lowered = word.lower()
            after_keyword = previous in ENTITY_KEYWORDS
            previous = lowered
            if len(word) < 2 or lowered in COMMON or word.isdigit():
                continue
            if not (_is_name(word) or lowered in case_vocab or after_keyword):
                continue
            verb_like = lowered.endswith(("ed", "ing", "s")) and len(lowered) > 4
            if after_keyword and verb_like and not _is_name(word) and lowered not in case_vocab:
                continue  # "account created", "host sending": a verb, not a name
            raw = word
        else:
            previous = ""
        if raw:
            out.append(Token(kind, normalize(raw)))
    return out


def _numbers(evidence: str) -> set[str]:
    return {m.group(0).lstrip("0") or "0" for m in _NUMBER.finditer(evidence)}


def _word_in(token: str, evidence: str) -> bool:
    if len(token) <= 3:
        return re.search(rf"(?<![a-z0-9]){re.escape(token)}(?![a-z0-9])", evidence) is not None
    return token in evidence


def token_in(token: Token, evidence: str, *, allowed_techniques: Iterable[str] = ()) -> bool:
    """Whether ``token`` appears in normalised ``evidence`` text."""
    text = token.text
    if token.kind == "number":
        return (text.lstrip("0") or "0") in _numbers(evidence) or _word_in(text, evidence)
    if token.kind == "technique" and text in {t.lower() for t in allowed_techniques}:
        return True
    if token.kind == "ip":
        return text in evidence or text.split(":")[0] in evidence
    if _word_in(text, evidence):
        return True
    if token.kind == "dotted" and text.rsplit(".", 1)[-1] in _PROGRAM_EXTENSIONS:
        stem = text.rsplit(".", 1)[0]
        if len(stem) >= 4 and _word_in(stem, evidence):
            return True  # powershell.exe vs "PowerShell"
    return False


def ungrounded_tokens(
    sentence: str,
    cited: Sequence[str],
    *,
    case_vocab: frozenset[str] = frozenset(),
    allowed_techniques: Iterable[str] = (),
) -> list[str]:
    """Concrete tokens of ``sentence`` that none of the ``cited`` evidence texts contains."""
    evidence = "\n".join(normalize(t) for t in cited)
    techniques = tuple(allowed_techniques)
    missing: list[str] = []
    for token in concrete_tokens(sentence, case_vocab):
        if not token_in(token, evidence, allowed_techniques=techniques) and token.text not in missing:
            missing.append(token.text)
    return missing
