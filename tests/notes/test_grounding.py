"""The grounded checker: concrete tokens must be in the cited evidence; verbs are not judged."""

from __future__ import annotations

from pathlib import Path

from tools.evaluation.grounding import evaluate
from tools.notes import FindingCode, NoteSections, RecordedAction, check_sections
from tools.notes.checker import split_sentences
from tools.notes.grounding import concrete_tokens, normalize

CORPUS = Path(__file__).parent / "data" / "grounding_corpus.json"
EVIDENCE = {
    "E1": "2025-05-02T22:01:17Z Windows Defender event 5001 on FIN-SRV-03: real-time protection disabled "
    "by svc_backup",
    "E2": "2025-05-02T22:03:00Z Sysmon 3 on FIN-SRV-03: powershell.exe connected to 203.0.113.7:443 "
    "(evil[.]com)",
}
ISOLATED = RecordedAction(action="isolate_host", target="FIN-SRV-03", actor="analyst:bob")


def codes(summary: list[str], actions: list[RecordedAction] | None = None, **other: list[str]) -> set[str]:
    fields = {"summary": summary, "impacted": ["Host FIN-SRV-03 [E1]"], "timeline": ["22:01 alert [E1]"]}
    fields |= {"next_steps": ["Review the evidence."], **other}
    found = check_sections(
        NoteSections.model_construct(**fields),
        evidence_labels=list(EVIDENCE),
        techniques=[],
        actions=actions or [],
        evidence_text=EVIDENCE,
    )
    return {f.code.value for f in found}


def test_a_paraphrase_of_an_attacker_action_is_grounded() -> None:
    assert codes(["The attacker disabled Defender on FIN-SRV-03 [E1]."]) == set()
    assert codes(["PowerShell reached evil.com at 203[.]0.113[.]7 over port 443 [E2]."]) == set()


def test_invented_numbers_hosts_and_addresses_are_ungrounded() -> None:
    assert codes(["Ransomware encrypted 500 servers [E1]."]) == {FindingCode.UNGROUNDED_CLAIM.value}
    assert codes(["Defender was disabled on FIN-SRV-04 [E1]."]) == {FindingCode.UNGROUNDED_CLAIM.value}
    assert codes(["powershell.exe connected to 203.0.113.8 [E2]."]) == {FindingCode.UNGROUNDED_CLAIM.value}


def test_a_token_from_another_item_is_wrongly_cited() -> None:
    assert codes(["powershell.exe connected to 203.0.113.7 [E1]."]) == {FindingCode.UNGROUNDED_CLAIM.value}
    assert codes(["svc_backup turned protection off [E2]."]) == {FindingCode.UNGROUNDED_CLAIM.value}


def test_every_sentence_must_cite_whatever_its_case() -> None:
    assert codes(["Defender was disabled [E1]. then it connected to 203.0.113.7."]) == {
        FindingCode.MISSING_CITATION.value
    }
    assert codes(["Alert on FIN-SRV-03 [E1]"], impacted=["host FIN-SRV-03"]) == {
        FindingCode.MISSING_CITATION.value
    }
    assert split_sentences("It ran on WS01. [E1] then it stopped [E2].") == [
        "It ran on WS01. [E1]",
        "then it stopped [E2].",
    ]


def test_a_response_action_must_cite_the_recorded_action() -> None:
    claim = "FIN-SRV-03 was isolated from the network [A1]."
    assert codes([claim], [ISOLATED]) == set()
    # the recorded action exists, but the sentence cites evidence that does not show it
    assert codes(["FIN-SRV-03 was isolated from the network [E1]."], [ISOLATED]) == {
        FindingCode.UNRECORDED_ACTION.value
    }
    # no action recorded: [A1] cites nothing that exists
    assert FindingCode.UNKNOWN_CITATION.value in codes([claim])


def test_next_steps_may_name_only_the_case_s_entities() -> None:
    assert codes(["Defender was disabled [E1]."], next_steps=["Review FIN-SRV-03 and svc_backup."]) == set()
    assert codes(["Defender was disabled [E1]."], next_steps=["Reimage WS-99."]) == {
        FindingCode.UNGROUNDED_CLAIM.value
    }


def test_normalisation_covers_case_defanging_and_path_separators() -> None:
    assert normalize("hxxps://Evil[.]com/A") == normalize("https://evil.com/a")
    assert normalize(r"C:\Temp\x.dll") == normalize("c:/temp/x.dll")
    kinds = {t.kind for t in concrete_tokens(r"At 09:14 CORP\alice ran x.exe -enc from 10.0.0.1 [E1].")}
    assert {"datetime", "account", "dotted", "flag", "ip"} <= kinds


def test_the_labelled_corpus_meets_the_targets() -> None:
    metrics, items = evaluate(CORPUS)
    assert len(items) >= 200
    assert metrics["recall_bad"] >= 0.95
    assert metrics["false_reject_rate_good"] <= 0.05
