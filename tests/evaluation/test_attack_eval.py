"""attack-text and attack-logs: label rules, hand-computed metrics, and no file-name leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from socflow.evaluation.datasets import LogLabel
from socflow.evaluation.tasks import EvalOptions
from socflow.model.scripted import ScriptedModel, ScriptRule
from tests.evaluation.conftest import SAMPLES
from tools.attack import get_index, load_catalog
from tools.evaluation.attack import LogLabels, logs_metrics, run_logs, run_text


def _opts(task: str, dataset: Path, tmp_path: Path, **kw: Any) -> EvalOptions:
    return EvalOptions(task=task, dataset=dataset, workdir=tmp_path, **kw)


def test_log_label_rules() -> None:
    catalog = load_catalog()
    v18 = LogLabels(catalog, LogLabel(file="a", technique_ids=["T1685"], technique_ids_v18_1=["T1562.001"]))
    assert v18.techniques == {"T1562.001"} and v18.ambiguous == 0
    v19 = LogLabels(catalog, LogLabel(file="b", technique_ids=["T1685", "T1685.005"], tactics=["stealth"]))
    assert v19.techniques == {"T1562.001", "T1562", "T1562.006", "T1070.001"}
    assert v19.ambiguous == 1  # T1685 stood for three v18.1 ids
    assert v19.tactics == {"TA0005"}
    both = LogLabels(catalog, LogLabel(file="c", tactic_ids=["TA0002"], tactics=["defense-impairment"]))
    assert both.tactics == {"TA0002"} and not both.techniques  # tactic_ids win over tactics
    assert LogLabels(catalog, LogLabel(file="d", tactics=["defense-impairment"])).tactics == {"TA0005"}


def test_logs_metrics_by_hand() -> None:
    catalog = load_catalog()
    rows = [  # (ranked suggestions, mapped, gold techniques, gold tactics)
        (["T1059.001", "T1105"], ["T1059.001", "T1105"], {"T1059.001"}, {"TA0002"}),  # top1 hit, tactic ok
        (["T1105", "T1059.003"], ["T1105", "T1059.003"], {"T1059.001"}, {"TA0002"}),  # top3 parent hit only
        (["T1003.001"], [], {"T1003.001"}, {"TA0006"}),  # only a candidate: no top-k hit, J 0
        (["T1105"], ["T1105"], set(), {"TA0011"}),  # no technique label: tactic only (C2: right)
    ]
    m = logs_metrics(rows, catalog)
    assert m["files_with_technique_labels"] == 3
    assert m["top1_full"] == pytest.approx(1 / 3)
    assert m["top3_full"] == pytest.approx(1 / 3)
    assert m["top1_parent"] == pytest.approx(1 / 3)
    assert m["top3_parent"] == pytest.approx(2 / 3)
    assert m["candidates_top3_full"] == pytest.approx(2 / 3)  # rows 1 and 3
    assert m["candidates_top3_parent"] == pytest.approx(3 / 3)
    # parents {T1059,T1105} vs {T1059}: J 1/2, F1 2/3 (twice); {} vs {T1003}: 0, 0
    assert m["jaccard_parent"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert m["f1_parent"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m["files_with_tactic_labels"] == 4
    assert m["tactic_accuracy"] == pytest.approx(2 / 4)


def test_attack_text_by_hand(tmp_path: Path) -> None:
    texts = [
        "certutil -urlcache downloaded a tool from a remote server to the host",
        "Scheduled task created with schtasks /create for persistence",
    ]
    index = get_index()
    top = [index.search(t, 1)[0].id for t in texts]
    assert top[1] != "T1003.001"
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": texts[0], "techniques": [top[0]]},
                {"text": texts[1], "techniques": ["T1003.001"]},
            ]
        ),
        encoding="utf-8",
    )
    first = ScriptedModel([ScriptRule(lambda m, method, options: str(options[0]), method="choose")])
    for model in (None, first):  # the top retrieval hit either way
        report = run_text(_opts("attack-text", data, tmp_path, model=model))
        assert [i.prediction["techniques"] for i in report.items] == [[top[0]], [top[1]]]
        # tp 1, fp 1, fn 1
        assert report.metrics["full"]["micro"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
        assert report.metrics["invalid_ids_emitted"] == 0


def test_attack_logs_no_file_name_leakage(tmp_path: Path, tiny_dir: Path) -> None:
    from socflow.model.hf import TransformersModel

    src = SAMPLES / "attack-logs" / "sample-14.evtx"
    for name, folder in (("neutral.evtx", "a"), ("T1059_powershell.evtx", "b")):
        (tmp_path / folder).mkdir()
        shutil.copyfile(src, tmp_path / folder / name)
        (tmp_path / folder / "labels.csv").write_text(
            f"file,technique_ids,tactic_ids\n{name},T1027;T1105,TA0005;TA0011\n", encoding="utf-8"
        )
    model = TransformersModel(tiny_dir, device="cpu", max_new_tokens=16)
    for m in (None, model):
        a = run_logs(_opts("attack-logs", tmp_path / "a", tmp_path, model=m))
        b = run_logs(_opts("attack-logs", tmp_path / "b", tmp_path, model=m))
        assert a.items[0].prediction == b.items[0].prediction
        assert a.items[0].prediction["alerts"] >= 1
        assert a.metrics == b.metrics


def test_attack_logs_counts_unlabelled_and_missing(tmp_path: Path) -> None:
    shutil.copyfile(SAMPLES / "attack-logs" / "sample-03.json", tmp_path / "x.json")
    shutil.copyfile(SAMPLES / "attack-logs" / "sample-04.json", tmp_path / "y.json")
    (tmp_path / "labels.jsonl").write_text(
        '{"file": "x.json", "technique_ids": "T1090.003", "tactics": "command-and-control"}\n'
        '{"file": "y.json", "technique_ids": "", "tactic_ids": "TA0011"}\n'
        '{"file": "gone.json", "technique_ids": "T1059"}\n',
        encoding="utf-8",
    )
    report = run_logs(_opts("attack-logs", tmp_path, tmp_path / "w"))
    assert report.counts["files"] == 2
    assert report.counts["files_missing"] == 1
    assert report.counts["files_without_technique_labels"] == 1
    assert report.metrics["all_sources"]["files_with_technique_labels"] == 1
    assert report.metrics["all_sources"]["files_with_tactic_labels"] == 2
