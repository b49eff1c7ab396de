"""Every metric against values computed by hand (the arithmetic is written out in each test)."""

from __future__ import annotations

import pytest

from socflow.evaluation import metrics


def test_set_scores_micro_and_macro() -> None:
    gold = [{"T1059", "T1003"}, {"T1105"}, {"T1047"}]
    pred = [{"T1059"}, {"T1105", "T1027"}, set()]
    s = metrics.set_scores(gold, pred)
    # micro: tp 2 (T1059, T1105), fp 1 (T1027), fn 2 (T1003, T1047)
    assert s["micro"]["precision"] == pytest.approx(2 / 3)
    assert s["micro"]["recall"] == pytest.approx(2 / 4)
    assert s["micro"]["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # macro over 5 labels: T1059 (1,1,1), T1105 (1,1,1), T1003 (0,0,0), T1047 (0,0,0), T1027 (0,0,0)
    assert s["labels"] == 5
    assert s["macro"] == pytest.approx({"precision": 2 / 5, "recall": 2 / 5, "f1": 2 / 5})


def test_set_scores_parent_level_and_empty() -> None:
    gold = [metrics.parents({"T1059.001"})]
    pred = [metrics.parents({"T1059.003", "T1105"})]
    s = metrics.set_scores(gold, pred)
    assert s["micro"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3})
    assert metrics.set_scores([set()], [set()])["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError):
        metrics.set_scores([set()], [])


def test_hit_at_k_jaccard_and_item_f1() -> None:
    ranked = ["T1105", "T1059.003", "T1027"]
    assert not metrics.hit_at_k(ranked, {"T1059.001"}, 1)
    assert not metrics.hit_at_k(ranked, {"T1059.001"}, 3)
    assert metrics.hit_at_k(ranked, {"T1059.001"}, 2, parent_level=True)
    assert not metrics.hit_at_k(ranked, {"T1059.001"}, 1, parent_level=True)
    assert metrics.hit_at_k([], {"T1059"}, 3) is False
    assert metrics.jaccard({"T1059", "T1003"}, {"T1059", "T1105", "T1027"}) == pytest.approx(1 / 4)
    assert metrics.jaccard(set(), set()) == 1.0
    # p = 1/3, r = 1/2 -> f1 = 2 * (1/6) / (5/6) = 0.4
    assert metrics.set_f1({"T1059", "T1003"}, {"T1059", "T1105", "T1027"}) == pytest.approx(0.4)


def test_binary_scores_confusion_and_fpr() -> None:
    gold = [True, True, True, False, False, False, False]
    pred = [True, True, False, True, False, False, False]
    s = metrics.binary_scores(gold, pred)
    assert s["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 3}
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["false_positive_rate"] == pytest.approx(1 / 4)
    assert s["accuracy"] == pytest.approx(5 / 7)


def test_macro_recall() -> None:
    gold = ["high", "high", "low", "critical"]
    pred = ["high", "low", "low", None]
    s = metrics.macro_recall(gold, pred)
    # high 1/2, low 1/1, critical 0/1 -> mean 0.5
    assert s["per_class"] == pytest.approx({"critical": 0.0, "high": 0.5, "low": 1.0})
    assert s["macro_recall"] == pytest.approx(0.5)


def test_calibration_table_and_ece() -> None:
    conf = [0.1, 0.3, 0.9, 1.0, 0.95]
    correct = [False, True, True, True, False]
    s = metrics.calibration(conf, correct, bins=5)
    counts = [b["count"] for b in s["bins"]]
    assert counts == [1, 1, 0, 0, 3]  # 1.0 falls in the last bin
    last = s["bins"][4]
    assert last["mean_confidence"] == pytest.approx((0.9 + 1.0 + 0.95) / 3)
    assert last["accuracy"] == pytest.approx(2 / 3)
    # ece = 1/5*|0-0.1| + 1/5*|1-0.3| + 3/5*|2/3-0.95|
    assert s["ece"] == pytest.approx(0.2 * 0.1 + 0.2 * 0.7 + 0.6 * abs(2 / 3 - 0.95))
    assert metrics.calibration([], [])["ece"] == 0.0
