"""Deterministic checks on a model-written case note; any finding rejects the draft.

* ``unknown_citation``: ``[E#]`` that is not one of the case's evidence items.
* ``missing_citation``: a sentence of a factual section (summary, impacted, timeline) citing nothing.
* ``unknown_technique``: an ATT&CK id, or the exact name of a catalog technique, that is not among the
  case's validated techniques (or their parents).
* ``unrecorded_action``: a response-action verb (isolate, quarantine, block, disable, reset, remove,
  contain) with no such action recorded. Factual sections may not use the verb in any form; next steps
  (recommendations) may say "isolate the host" but not "the host was isolated".
* ``missing_section``: a model-written section left empty.
* ``ungrounded_claim``: a concrete token of a sentence (host, user, IP, domain, hash, path, process,
  command fragment, number, time, technique id) that the evidence it cites does not contain
  (``tools.notes.grounding``). Checked when the evidence texts are given (``evidence_text``).

Recorded response actions are citable as ``[A1]``.. (in the order given); with evidence texts, a
response-action verb in a factual sentence needs a cited recorded action of that kind, or cited
evidence that shows the act ("the attacker disabled Defender [E1]" when E1 says so). Every sentence
and list item of a factual section must cite, whatever case it starts with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

from tools.attack.catalog import AttackCatalog
from tools.notes.grounding import case_vocabulary, normalize, ungrounded_tokens
from tools.notes.models import (
    FACTUAL_SECTIONS,
    MODEL_SECTIONS,
    ActionKind,
    Finding,
    FindingCode,
    NoteSections,
    RecordedAction,
    ValidatedTechnique,
)

CITATION_GROUP = re.compile(r"\[\s*([EA]\d+(?:\s*,\s*[EA]\d+)*)\s*\]")
_LABEL = re.compile(r"[EA]\d+")
_TECH_ID = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")
# a sentence ends at . ! ? followed by space, whatever comes next; not after e.g./i.e./vs.
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bvs\.)(?<=[.!?])\s+")
_ONLY_CITATIONS = re.compile(r"^(?:\[\s*[EA]\d+(?:\s*,\s*[EA]\d+)*\s*\]\s*)+[.!?]?$")
_LEADING_CITATIONS = re.compile(r"^(?:\[\s*[EA]\d+(?:\s*,\s*[EA]\d+)*\s*\]\s*)+")
_STEM: dict[ActionKind, str] = {
    ActionKind.ISOLATE: "isolat",
    ActionKind.QUARANTINE: "quarantin",
    ActionKind.BLOCK: "block",
    ActionKind.DISABLE: "disabl",
    ActionKind.RESET: "reset",
    ActionKind.REMOVE: "remov",
    ActionKind.CONTAIN: "contain",
}
# every form, for factual sections
_ACTION_ANY: dict[ActionKind, str] = {
    ActionKind.ISOLATE: r"isolat(?:e|ed|es|ing|ion)",
    ActionKind.QUARANTINE: r"quarantin(?:e|ed|es|ing)",
    ActionKind.BLOCK: r"block(?:s|ed|ing)?",
    ActionKind.DISABLE: r"disabl(?:e|ed|es|ing)",
    ActionKind.RESET: r"reset(?:s|ting)?",
    ActionKind.REMOVE: r"remov(?:e|ed|es|ing|al)",
    ActionKind.CONTAIN: r"contain(?:ed|ment)",
}
# claims that an action happened, for next steps
_ACTION_DONE: dict[ActionKind, str] = {
    ActionKind.ISOLATE: r"isolated",
    ActionKind.QUARANTINE: r"quarantined",
    ActionKind.BLOCK: r"blocked",
    ActionKind.DISABLE: r"disabled",
    ActionKind.RESET: r"(?:was|were|been|has|have|had)\s+reset",
    ActionKind.REMOVE: r"removed",
    ActionKind.CONTAIN: r"contained",
}


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b{pattern}\b", re.IGNORECASE)


ACTION_ANY = {k: _words(v) for k, v in _ACTION_ANY.items()}
ACTION_DONE = {k: _words(v) for k, v in _ACTION_DONE.items()}


def cited_labels(text: str) -> list[str]:
    return [label for group in CITATION_GROUP.findall(text) for label in _LABEL.findall(group)]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; a trailing citation-only fragment ("... WS01. [E1]") joins the one before."""
    out: list[str] = []
    for part in (p.strip() for p in _SENTENCE_END.split(text)):
        if not part:
            continue
        lead = _LEADING_CITATIONS.match(part)
        if out and lead:
            out[-1] = f"{out[-1]} {lead.group(0).strip()}"
            part = part[lead.end() :].strip()
        if part and not _ONLY_CITATIONS.match(part):
            out.append(part)
        elif part and out:
            out[-1] = f"{out[-1]} {part}"
    return out


def action_label_texts(actions: Sequence[RecordedAction]) -> dict[str, str]:
    """``A1``.. -> a citable text of each recorded action (in the order given)."""
    return {
        f"A{i}": " ".join(
            p
            for p in (
                a.at.isoformat() if a.at else "",
                f"recorded action {a.action} on {a.target}",
                f"by {a.actor}" if a.actor else "",
            )
            if p
        )
        for i, a in enumerate(actions, start=1)
    }


@cache
def _name_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def _technique_names(catalog: AttackCatalog) -> tuple[str, ...]:
    """Catalog names specific enough to count as a technique claim (two words or more)."""
    return tuple(sorted({t.name for t in catalog.active() if len(t.name.split()) >= 2}))


def check_sections(
    sections: NoteSections,
    *,
    evidence_labels: Iterable[str],
    techniques: Sequence[ValidatedTechnique],
    actions: Sequence[RecordedAction],
    catalog: AttackCatalog | None = None,
    attempt: int = 1,
    evidence_text: Mapping[str, str] | None = None,
) -> list[Finding]:
    """All findings for one draft; an empty list means the draft is accepted.

    ``evidence_text`` (``E#`` -> the evidence text the model was shown) turns on the grounding checks.
    """
    action_texts = action_label_texts(actions)
    labels = set(evidence_labels) | set(action_texts)
    recorded = {a.kind for a in actions}
    kinds = {f"A{i}": a.kind for i, a in enumerate(actions, start=1)}
    texts: dict[str, str] | None = None
    vocab: frozenset[str] = frozenset()
    if evidence_text is not None:
        texts = {**{k: v for k, v in evidence_text.items()}, **action_texts}
        vocab = case_vocabulary(texts.values())
    allowed_ids = {t.technique_id for t in techniques}
    allowed_names = {t.name for t in techniques}
    if catalog is not None:
        for tid in list(allowed_ids):
            tech = catalog.lookup(tid)
            if tech.parent_id:
                allowed_ids.add(tech.parent_id)
                allowed_names.add(catalog.lookup(tech.parent_id).name)
    names = _name_pattern(_technique_names(catalog)) if catalog is not None else None
    findings: list[Finding] = []

    def add(code: FindingCode, section: str, detail: str) -> None:
        finding = Finding(code=code, section=section, detail=detail[:400], attempt=attempt)
        if finding not in findings:
            findings.append(finding)

    for section in MODEL_SECTIONS:
        entries: list[str] = getattr(sections, section)
        if not entries:
            add(FindingCode.MISSING_SECTION, section, "section is empty")
        factual = section in FACTUAL_SECTIONS
        verbs = ACTION_ANY if factual else ACTION_DONE
        for entry in entries:
            for label in cited_labels(entry):
                if label not in labels:
                    add(
                        FindingCode.UNKNOWN_CITATION,
                        section,
                        f"[{label}] is not an evidence item of this case",
                    )
            for sentence in split_sentences(entry):
                cites = [x for x in cited_labels(sentence) if x in labels]
                if factual and not cited_labels(sentence):
                    add(FindingCode.MISSING_CITATION, section, f"no [E#] citation: {sentence[:200]!r}")
                if texts is None:
                    continue
                shown = [texts[x] for x in cites] if (factual or cites) else list(texts.values())
                if factual and not cites:
                    continue
                missing = ungrounded_tokens(sentence, shown, case_vocab=vocab, allowed_techniques=allowed_ids)
                if missing:
                    add(
                        FindingCode.UNGROUNDED_CLAIM,
                        section,
                        f"not in the cited evidence: {', '.join(missing[:5])} in {sentence[:160]!r}",
                    )
                cited_text = normalize(" ".join(shown))
                for kind, pattern in verbs.items():
                    verb = pattern.search(sentence)
                    if verb is None:
                        continue
                    by_action = any(kinds.get(x) == kind for x in cites)
                    if not by_action and _STEM[kind] not in cited_text:
                        add(
                            FindingCode.UNRECORDED_ACTION,
                            section,
                            f"{verb.group(0)!r} is neither a cited recorded {kind.value} action nor in "
                            "the cited evidence",
                        )
            for tid in _TECH_ID.findall(entry):
                if tid not in allowed_ids:
                    add(
                        FindingCode.UNKNOWN_TECHNIQUE,
                        section,
                        f"{tid} is not a validated technique of this case",
                    )
            if names is not None:
                for match in names.finditer(entry):
                    if match.group(0) not in allowed_names:
                        add(
                            FindingCode.UNKNOWN_TECHNIQUE,
                            section,
                            f"technique {match.group(0)!r} is not a validated technique of this case",
                        )
            for kind, pattern in verbs.items() if texts is None else {}.items():  # no texts: any use
                verb = pattern.search(entry)
                if verb and kind not in recorded:
                    add(
                        FindingCode.UNRECORDED_ACTION,
                        section,
                        f"{verb.group(0)!r} but no {kind.value} action was recorded",
                    )
    return findings
