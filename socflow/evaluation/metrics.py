"""Quality metrics, pure functions over plain values (every one is checked by hand in tests/evaluation).

Set metrics (multi-label, e.g. ATT&CK techniques per item)::

    set_scores(gold, pred)        -> micro / macro precision, recall, F1
    hit_at_k(ranked, gold, k)     -> one of the first k predictions is a gold id
    jaccard(gold, pred)           -> |g & p| / |g | p| (1.0 when both are empty)

Binary metrics (triage: positive = "a human must look at it")::

    binary_scores(gold, pred)     -> precision, recall, F1, false-positive rate, confusion matrix
    macro_recall(gold, pred)      -> recall averaged over the gold classes
    calibration(confidences, correct, bins) -> per-bin count, mean confidence, accuracy; ECE
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any


def parent(technique_id: str) -> str:
    """``T1059.001`` -> ``T1059``."""
    return technique_id.split(".", 1)[0]


def parents(ids: Iterable[str]) -> set[str]:
    return {parent(i) for i in ids}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where a denominator is 0)."""
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
    }


def set_scores(gold: Sequence[set[str]], pred: Sequence[set[str]]) -> dict[str, Any]:
    """Micro (pooled counts) and macro (mean over every label seen in gold or predictions) P/R/F1."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred must have one entry per item")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        tp.update(g & p)
        fp.update(p - g)
        fn.update(g - p)
    labels = sorted(set(tp) | set(fp) | set(fn))
    per_label = [prf(tp[x], fp[x], fn[x]) for x in labels]
    macro = {
        key: (sum(s[key] for s in per_label) / len(per_label) if per_label else 0.0)
        for key in ("precision", "recall", "f1")
    }
    return {
        "micro": prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "macro": macro,
        "labels": len(labels),
    }


def hit_at_k(ranked: Sequence[str], gold: set[str], k: int, *, parent_level: bool = False) -> bool:
    top = list(ranked[:k])
    if parent_level:
        return bool(parents(top) & parents(gold))
    return bool(set(top) & gold)


def jaccard(gold: set[str], pred: set[str]) -> float:
    union = gold | pred
    return len(gold & pred) / len(union) if union else 1.0


def set_f1(gold: set[str], pred: set[str]) -> float:
    """F1 of one item's predicted set against its gold set (1.0 when both are empty)."""
    if not gold and not pred:
        return 1.0
    return prf(len(gold & pred), len(pred - gold), len(gold - pred))["f1"]


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def binary_scores(gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, Any]:
    """Precision/recall/F1 of the positive class, false-positive rate and the confusion matrix."""
    pairs = list(zip(gold, pred, strict=True))
    tp = sum(1 for g, p in pairs if g and p)
    fp = sum(1 for g, p in pairs if not g and p)
    fn = sum(1 for g, p in pairs if g and not p)
    tn = sum(1 for g, p in pairs if not g and not p)
    return {
        **prf(tp, fp, fn),
        "false_positive_rate": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, len(pairs)),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def macro_recall(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, Any]:
    """Recall per gold class and their mean (classes that never occur in gold are not averaged)."""
    per: dict[str, float] = {}
    for cls in sorted(set(gold)):
        idx = [i for i, g in enumerate(gold) if g == cls]
        per[cls] = sum(1 for i in idx if pred[i] == cls) / len(idx)
    return {"macro_recall": mean(per.values()), "per_class": per, "items": len(gold)}


def calibration(confidences: Sequence[float], correct: Sequence[bool], *, bins: int = 5) -> dict[str, Any]:
    """Reliability table over ``bins`` equal-width confidence bins, and the expected calibration error.

    A confidence of exactly 1.0 falls in the last bin. Empty bins are listed with count 0.
    """
    rows: list[dict[str, Any]] = []
    total = len(confidences)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidences) if lo <= c < hi or (b == bins - 1 and c == hi)]
        conf = mean(confidences[i] for i in idx)
        acc = mean(1.0 if correct[i] else 0.0 for i in idx)
        if idx:
            ece += len(idx) / total * abs(acc - conf)
        rows.append(
            {"bin": f"{lo:.1f}-{hi:.1f}", "count": len(idx), "mean_confidence": conf, "accuracy": acc}
        )
    return {"bins": rows, "ece": ece, "items": total}
