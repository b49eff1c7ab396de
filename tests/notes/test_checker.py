"""The deterministic note checker: one test per finding code, and what it must let through."""

from __future__ import annotations

from tools.attack.catalog import load_catalog
from tools.attack.mapper import MappedTechnique, TechniqueSource
from tools.notes import FindingCode, NoteSections, RecordedAction, check_sections

LABELS = ["E1", "E2", "E3"]
PS = MappedTechnique(
    technique_id="T1059.001",
    name="PowerShell",
    tactics=["Execution"],
    confidence=0.9,
    source=TechniqueSource.RULE_TAG,
    evidence_ids=["ev1"],
)


def sections(**overrides: list[str]) -> NoteSections:
    base = {
        "summary": ["PowerShell ran an encoded command on WS01 [E1]. It was launched by winword.exe [E2]."],
        "impacted": ["Host WS01 [E1]", "User alice [E1, E3]"],
        "timeline": ["09:14 winword.exe started powershell.exe [E2]"],
        "next_steps": ["Isolate WS01 if the command is confirmed malicious.", "Review alice's mailbox."],
    }
    base.update(overrides)
    return NoteSections(**base)


def codes(note: NoteSections, actions: list[RecordedAction] | None = None) -> list[FindingCode]:
    found = check_sections(
        note, evidence_labels=LABELS, techniques=[PS], actions=actions or [], catalog=load_catalog()
    )
    return [f.code for f in found]


def test_a_clean_draft_passes() -> None:
    assert codes(sections()) == []


def test_citation_of_missing_evidence_is_rejected() -> None:
    assert codes(sections(timeline=["09:14 powershell.exe ran [E9]"])) == [FindingCode.UNKNOWN_CITATION]
    assert codes(sections(impacted=["Host WS01 [E1, E7]"])) == [FindingCode.UNKNOWN_CITATION]


def test_every_factual_sentence_must_cite() -> None:
    note = sections(summary=["PowerShell ran on WS01 [E1]. The user opened a document."])
    assert codes(note) == [FindingCode.MISSING_CITATION]


def test_techniques_not_validated_for_the_case_are_rejected() -> None:
    assert codes(sections(summary=["Windows Command Shell was used on WS01 [E1]."])) == [
        FindingCode.UNKNOWN_TECHNIQUE
    ]
    assert codes(sections(timeline=["09:14 T1059.003 observed [E2]"])) == [FindingCode.UNKNOWN_TECHNIQUE]
    # the validated technique, its parent and its id are fine
    ok = sections(summary=["PowerShell (T1059.001), a Command and Scripting Interpreter, ran on WS01 [E1]."])
    assert codes(ok) == []


def test_action_claims_need_a_recorded_action() -> None:
    claim = sections(summary=["WS01 was isolated from the network [E1]."])
    assert codes(claim) == [FindingCode.UNRECORDED_ACTION]
    recorded = RecordedAction(action="isolate_host", target="WS01", actor="analyst:bob")
    assert codes(claim, [recorded]) == []
    assert codes(sections(next_steps=["The account was disabled."])) == [FindingCode.UNRECORDED_ACTION]
    for verb in ("quarantined", "blocked", "removed", "contained", "reset"):
        assert codes(sections(timeline=[f"09:20 the file was {verb} [E2]"])) == [
            FindingCode.UNRECORDED_ACTION
        ]


def test_empty_sections_are_missing() -> None:
    assert codes(sections(impacted=[])) == [FindingCode.MISSING_SECTION]
