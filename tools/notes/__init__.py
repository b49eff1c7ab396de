"""Case-note drafting: model-written sections checked against the evidence, code-written facts.

Public API::

    draft_case_note(model, case, evidence, techniques, actions=(), *, ctx=None) -> DraftResult
    actions_from_audit(audit_events) -> list[RecordedAction]
    check_sections(sections, *, evidence_labels, techniques, actions, catalog=None) -> list[Finding]
"""

from tools.notes.checker import check_sections
from tools.notes.draft import draft_case_note, note_prompt
from tools.notes.models import (
    ActionKind,
    DraftResult,
    DraftStatus,
    EvidenceItem,
    Finding,
    FindingCode,
    NoteInput,
    NoteSections,
    RecordedAction,
    ValidatedTechnique,
    actions_from_audit,
    evidence_item,
)
from tools.notes.render import FALLBACK_BANNER, render_note

__all__ = [
    "FALLBACK_BANNER",
    "ActionKind",
    "DraftResult",
    "DraftStatus",
    "EvidenceItem",
    "Finding",
    "FindingCode",
    "NoteInput",
    "NoteSections",
    "RecordedAction",
    "ValidatedTechnique",
    "actions_from_audit",
    "check_sections",
    "draft_case_note",
    "evidence_item",
    "note_prompt",
    "render_note",
]
