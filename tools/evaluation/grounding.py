"""``grounding``: the note checker's precision and recall on a labelled sentence corpus.

The corpus (``tests/notes/data/grounding_corpus.json``) holds scenarios: evidence texts ``E#``,
recorded actions ``A#`` and sentences labelled ``grounded``, ``paraphrased`` (must be accepted),
``ungrounded``, ``uncited``, ``wrongly_cited`` (must be rejected). Each sentence is checked alone, in
its section, against its scenario. A "positive" is a rejection: recall = rejected bad sentences / bad
sentences; false rejections = rejected good sentences / good sentences.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from socflow.evaluation.report import EvalReport, ItemResult
from socflow.evaluation.tasks import EvalOptions
from tools.notes.checker import check_sections
from tools.notes.models import NoteSections, RecordedAction

GOOD = {"grounded", "paraphrased"}
BAD = {"ungrounded", "uncited", "wrongly_cited"}
FILLER = {
    "summary": ["Filler [E1]."],
    "impacted": ["Filler [E1]"],
    "timeline": ["Filler [E1]"],
    "next_steps": ["Review the evidence."],
}


def check_sentence(scenario: dict[str, Any], section: str, text: str) -> list[str]:
    """Finding lines for one sentence placed in ``section`` of an otherwise empty note."""
    evidence = {k: v for k, v in scenario["evidence"].items() if k.startswith("E")}
    actions = [
        RecordedAction(action=a["action"], target=a.get("target", ""), actor=a.get("actor", ""))
        for a in scenario.get("actions", [])
    ]
    # recorded actions are given as A# texts in the corpus; they become the checker's actions
    if not actions:
        actions = [
            RecordedAction(
                action=_action_name(v),
                target=_action_target(v),
                actor=_action_actor(v),
                at=datetime.fromisoformat(v.split(" ", 1)[0]),
            )
            for k, v in sorted(scenario["evidence"].items())
            if k.startswith("A")
        ]
    fields: dict[str, list[str]] = {key: [] for key in FILLER}
    fields[section] = [text]
    sections = NoteSections.model_construct(**fields)  # type: ignore[arg-type]
    found = check_sections(
        sections,
        evidence_labels=list(evidence),
        techniques=[],
        actions=actions,
        evidence_text=evidence,
    )
    return [f.line() for f in found if f.section == section]


def _action_name(text: str) -> str:
    return text.split("recorded action ", 1)[-1].split(" ", 1)[0]


def _action_target(text: str) -> str:
    rest = text.split("recorded action ", 1)[-1]
    return rest.split(" on ", 1)[-1].split(" by ", 1)[0] if " on " in rest else ""


def _action_actor(text: str) -> str:
    return text.rsplit(" by ", 1)[-1] if " by " in text else ""


def evaluate(path: Path) -> tuple[dict[str, Any], list[ItemResult]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    items: list[ItemResult] = []
    by_label: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for scenario in doc["scenarios"]:
        for i, sentence in enumerate(scenario["sentences"]):
            findings = check_sentence(scenario, sentence["section"], sentence["text"])
            label = sentence["label"]
            by_label[label] += 1
            rejected[label] += bool(findings)
            items.append(
                ItemResult(
                    id=f"{scenario['id']}#{i}",
                    prediction={"rejected": bool(findings), "findings": findings},
                    label={"label": label, "text": sentence["text"]},
                )
            )
    bad = sum(by_label[x] for x in BAD)
    good = sum(by_label[x] for x in GOOD)
    caught = sum(rejected[x] for x in BAD)
    false_rejects = sum(rejected[x] for x in GOOD)
    precision = caught / (caught + false_rejects) if caught + false_rejects else 0.0
    metrics = {
        "recall_bad": round(caught / bad, 4) if bad else 0.0,
        "false_reject_rate_good": round(false_rejects / good, 4) if good else 0.0,
        "precision": round(precision, 4),
        "by_label": {k: {"n": by_label[k], "rejected": rejected[k]} for k in sorted(by_label)},
    }
    return metrics, items


def run(opts: EvalOptions) -> EvalReport:
    metrics, items = evaluate(opts.dataset)
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model="none",
        counts={"sentences": len(items)},
        metrics=metrics,
        items=items,
    )
