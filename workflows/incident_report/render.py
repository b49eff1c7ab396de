"""Markdown for the incident report: the note's sections, techniques grouped by tactic, remediation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from socflow.untrusted import clean_text
from tools.notes import EvidenceItem, RecordedAction, ValidatedTechnique
from tools.notes.render import SECTION_TITLES, evidence_labels, render_actions, render_techniques
from workflows.incident_report.state import TacticGroup

FALLBACK_BANNER = (
    "> **PARTLY FALLBACK**: a part the model writes was built from the evidence alone instead (no model is "
    "configured, or its answers failed the evidence checks twice). Review and complete it by hand."
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!|#])")


def md_safe(text: str, max_chars: int = 240) -> str:
    """Untrusted text on one line with Markdown control characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean_text(text, max_chars).replace("\n", " "))


@dataclass(frozen=True)
class ReportParts:
    case_id: int
    title: str
    severity: str
    summary: Sequence[str]
    impacted: Sequence[str]
    tactics: Sequence[TacticGroup]
    techniques: Sequence[ValidatedTechnique]
    timeline: Sequence[str]
    actions: Sequence[RecordedAction]
    remediation: Sequence[str]
    next_steps: Sequence[str]
    evidence: Sequence[EvidenceItem]
    fallback: bool = False
    findings: Sequence[str] = ()


def _section(title: str, lines: Sequence[str]) -> str:
    return f"## {title}\n\n" + "\n".join(lines) + "\n"


def _bullets(items: Sequence[str]) -> list[str]:
    return [f"- {item}" for item in items]


def _by_tactic(parts: ReportParts, labels: dict[str, str]) -> list[str]:
    if not parts.tactics:
        return ["No ATT&CK technique was validated for this incident."]
    by_id = {t.technique_id: t for t in parts.techniques}
    lines: list[str] = []
    for group in parts.tactics:
        techs = [by_id[tid] for tid in group["techniques"] if tid in by_id]
        lines += [f"### {group['tactic']}", "", *render_techniques(techs, labels), ""]
    return lines[:-1]


def render_report(parts: ReportParts) -> str:
    labels = evidence_labels(parts.evidence)
    head = [
        f"# Incident report: {md_safe(parts.title, 200)}\n",
        f"Case {parts.case_id}, severity {parts.severity}.\n",
    ]
    if parts.fallback:
        head.append(FALLBACK_BANNER + "\n")
    if parts.findings:
        head.append("> **Checker findings**: " + "; ".join(md_safe(f, 200) for f in parts.findings) + "\n")
    evidence = [
        f"- [E{i}] `{e.evidence_id}`: {md_safe(e.summary)}" for i, e in enumerate(parts.evidence, start=1)
    ]
    body = [
        _section(SECTION_TITLES["summary"], [" ".join(parts.summary)]),
        _section(SECTION_TITLES["impacted"], _bullets(parts.impacted)),
        _section(SECTION_TITLES["techniques"], _by_tactic(parts, labels)),
        _section(SECTION_TITLES["timeline"], _bullets(parts.timeline)),
        _section(SECTION_TITLES["actions"], render_actions(parts.actions)),
        _section("Remediation steps", _bullets(parts.remediation)),
        _section(SECTION_TITLES["next_steps"], _bullets(parts.next_steps)),
        _section("Evidence", evidence or ["No evidence items."]),
    ]
    return "\n".join(head + body)
