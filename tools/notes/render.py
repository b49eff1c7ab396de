"""Markdown for a case note: model sections as given, ATT&CK and actions from code, and the fallback note."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC

from socflow.untrusted import clean_text
from tools.notes.models import EvidenceItem, NoteInput, NoteSections, RecordedAction, ValidatedTechnique

SECTION_TITLES: dict[str, str] = {
    "summary": "Summary",
    "impacted": "Impacted assets and users",
    "techniques": "ATT&CK techniques",
    "timeline": "Timeline",
    "actions": "Actions taken",
    "next_steps": "Recommended next steps",
}
FALLBACK_BANNER = (
    "> **FALLBACK NOTE**: the model's drafts failed the evidence checks, so this note was built from the "
    "evidence alone, without interpretation. Review the evidence and complete it by hand."
)
NO_ACTIONS = "No response actions were recorded."
NO_MODEL_BANNER = (
    "> **FALLBACK NOTE**: no model is configured, so this note was built from the evidence alone, without "
    "interpretation. Review the evidence and complete it by hand."
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!|#])")


def evidence_labels(evidence: Sequence[EvidenceItem]) -> dict[str, str]:
    """``E1``.. in the order given -> evidence id."""
    return {f"E{i}": item.evidence_id for i, item in enumerate(evidence, start=1)}


def _one_line(text: str, max_chars: int = 240) -> str:
    return clean_text(text, max_chars).replace("\n", " ")


def _md_safe(text: str, max_chars: int = 240) -> str:
    """Untrusted text on one line with Markdown control characters escaped (no links, images, HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text, max_chars))


def _quoted(text: str) -> str:
    """Evidence text quoted verbatim (it is data, not a statement of the note)."""
    # sentence ends inside the quote would split the cited line for the checker: they are data, not ends
    quoted = _md_safe(text, 160).replace('"', "'").replace("...", "\u2026")
    quoted = re.sub(r"([.!?])(?=\s|'|$)", "\u2024", quoted)
    return '"' + quoted + '"'


def render_techniques(techniques: Sequence[ValidatedTechnique], labels: dict[str, str]) -> list[str]:
    by_id = {v: k for k, v in labels.items()}
    lines = []
    for t in techniques:
        refs = "".join(f"[{by_id[e]}]" for e in t.evidence_ids if e in by_id)
        lines.append(
            f"- {t.technique_id} — {t.name} ({', '.join(t.tactics)}); source: {t.source.value}, "
            f"confidence {t.confidence:.2f}" + (f" {refs}" if refs else "")
        )
    return lines or ["No ATT&CK technique was validated for this case."]


def render_actions(actions: Sequence[RecordedAction]) -> list[str]:
    lines = []
    for a in actions:
        when = a.at.isoformat() if a.at else "time not recorded"
        who = f" by {_one_line(a.actor, 80)}" if a.actor else ""
        audit = f" (audit {a.audit_event_id})" if a.audit_event_id else ""
        lines.append(f"- {when}: {_one_line(a.action, 100)} {_one_line(a.target, 200)}{who}{audit}".rstrip())
    return lines or [NO_ACTIONS]


def _section(key: str, lines: Sequence[str]) -> str:
    return f"## {SECTION_TITLES[key]}\n\n" + "\n".join(lines) + "\n"


def _bullets(items: Sequence[str]) -> list[str]:
    return [f"- {item}" for item in items]


def _evidence_list(evidence: Sequence[EvidenceItem]) -> str:
    lines = [f"- [E{i}] `{e.evidence_id}`: {_md_safe(e.summary)}" for i, e in enumerate(evidence, start=1)]
    return "## Evidence\n\n" + ("\n".join(lines) if lines else "No evidence items.") + "\n"


def render_note(
    case: NoteInput,
    sections: NoteSections,
    evidence: Sequence[EvidenceItem],
    techniques: Sequence[ValidatedTechnique],
    actions: Sequence[RecordedAction],
    *,
    banner: str | None = None,
) -> str:
    labels = evidence_labels(evidence)
    parts = [f"# Case note: {_md_safe(case.title, 200)}\n"]
    if banner:
        parts.append(banner + "\n")
    parts += [
        _section("summary", [" ".join(sections.summary)]),
        _section("impacted", _bullets(sections.impacted)),
        _section("techniques", render_techniques(techniques, labels)),
        _section("timeline", _bullets(sections.timeline)),
        _section("actions", render_actions(actions)),
        _section("next_steps", _bullets(sections.next_steps)),
        _evidence_list(evidence),
    ]
    return "\n".join(parts)


def fallback_sections(case: NoteInput, evidence: Sequence[EvidenceItem]) -> NoteSections:
    """Sections built from the evidence alone: nothing inferred, everything cited."""
    refs = "".join(f"[E{i}]" for i in range(1, len(evidence) + 1))
    severity = f" with severity {_one_line(case.severity, 40)}" if case.severity else ""
    summary = [f"The case has {len(evidence)} evidence item(s){severity}; see the timeline. {refs}".strip()]
    impacted = []
    for kind, attr in (("Host", "hosts"), ("User", "users")):
        seen: dict[str, list[str]] = {}
        for i, item in enumerate(evidence, start=1):
            for name in getattr(item, attr):
                seen.setdefault(_one_line(name, 120), []).append(f"[E{i}]")
        impacted += [f"{kind} {name} {''.join(cites)}" for name, cites in seen.items()]
    dated = sorted(
        (e.timestamp if e.timestamp.tzinfo else e.timestamp.replace(tzinfo=UTC), i)
        for i, e in enumerate(evidence, start=1)
        if e.timestamp is not None
    )  # naive timestamps read as UTC so mixed inputs still sort
    undated = [i for i, e in enumerate(evidence, start=1) if e.timestamp is None]
    timeline = [f"{ts.isoformat()}: {_quoted(evidence[i - 1].summary)} [E{i}]" for ts, i in dated]
    timeline += [f"Undated: {_quoted(evidence[i - 1].summary)} [E{i}]" for i in undated]
    return NoteSections.model_construct(
        summary=summary,
        impacted=impacted or [f"No host or user was extracted from the evidence. {refs}".strip()],
        timeline=timeline or ["No evidence items."],
        next_steps=["Review the evidence items listed below and complete this note by hand."],
    )
