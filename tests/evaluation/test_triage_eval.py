"""triage: labelled alerts through ingest -> alert_triage -> persisted case, metrics by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from socflow.evaluation import triage
from socflow.evaluation.datasets import DatasetError
from socflow.evaluation.tasks import CountingRecorder, EvalOptions, attach_counter
from tests.evaluation.conftest import triage_model

ANSWERS = {  # marker in the title -> (verdict, priority, confidence)
    "ALPHA": ("true_positive", "high", 0.9),
    "BRAVO": ("false_positive", "low", 0.7),
    "CHARLIE": ("true_positive", "medium", 0.6),
    "DELTA": ("benign_positive", "low", 0.8),
}
LABELS = [  # marker, label, priority
    ("ALPHA", "true_positive", "high"),  # TP
    ("BRAVO", "false_positive", "low"),  # TN
    ("CHARLIE", "false_positive", "high"),  # FP
    ("DELTA", "true_positive", "critical"),  # FN (benign_positive counts as negative)
]


def _alert(marker: str) -> dict[str, Any]:
    return {
        "source": "test",
        "title": f"Suspicious activity {marker}",
        "severity": "high",
        "rule": {"id": "r1", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": ["WS1"]},
    }


def _dataset(tmp_path: Path) -> Path:
    path = tmp_path / "triage.jsonl"
    path.write_text(
        "".join(
            json.dumps({"alert": _alert(m), "label": label, "priority": prio}) + "\n"
            for m, label, prio in LABELS
        ),
        encoding="utf-8",
    )
    return path


def test_triage_metrics_by_hand(tmp_path: Path) -> None:
    counter = CountingRecorder()
    model = triage_model(ANSWERS)
    attach_counter(model, counter)
    opts = EvalOptions(
        task="triage", dataset=_dataset(tmp_path), workdir=tmp_path, model=model, counter=counter
    )
    report = triage.run(opts)
    assert [i.error for i in report.items] == [None] * 4
    assert [i.prediction["verdict"] for i in report.items] == [ANSWERS[m][0] for m, _, _ in LABELS]
    m = report.metrics
    assert m["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["false_positive_rate"] == pytest.approx(0.5)
    assert m["abstention_rate"] == 0.0
    # high: ALPHA right, CHARLIE wrong -> 1/2; low: BRAVO right -> 1; critical: DELTA wrong -> 0
    assert m["priority"]["macro_recall"] == pytest.approx(0.5)
    bins = {b["bin"]: b for b in m["calibration"]["bins"]}
    assert bins["0.6-0.8"]["count"] == 2 and bins["0.6-0.8"]["accuracy"] == pytest.approx(0.5)
    assert bins["0.8-1.0"]["count"] == 2 and bins["0.8-1.0"]["accuracy"] == pytest.approx(0.5)
    assert report.workflow_version and report.workflow_version.startswith("alert_triage@")
    assert all(i.model_calls >= 3 for i in report.items)  # choose, assess, score (+ note)
    assert all(i.prompt_tokens > 0 for i in report.items)


def test_no_model_sends_everything_to_a_human(tmp_path: Path) -> None:
    opts = EvalOptions(task="triage", dataset=_dataset(tmp_path), workdir=tmp_path, limit=3)
    report = triage.run(opts)
    assert len(report.items) == 3
    assert {i.prediction["verdict"] for i in report.items} == {"needs_review"}
    assert report.metrics["abstention_rate"] == 1.0
    assert report.metrics["recall"] == 1.0
    assert report.metrics["confusion"] == {"tp": 1, "fp": 2, "fn": 0, "tn": 0}


def test_bad_label_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"alert": {}, "label": "maybe"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.jsonl:1"):
        triage.run(EvalOptions(task="triage", dataset=path, workdir=tmp_path))
