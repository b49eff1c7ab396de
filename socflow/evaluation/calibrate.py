"""``socflow eval triage DATA --fit-calibration FILE``: fit the verdict confidence's temperature.

Each labelled alert (the triage dataset format) is scored as ``assess_case`` scores a one-alert case
without SIEM evidence: the workflow's own scoring prompt (``wiring.triage_scoring``) and the model's
``score_labels`` over the verdict labels. Items alternate between a fit half and a held-out half (by
position). ``T`` is fitted on the fit half by NLL (``socflow.calibration.fit_temperature``); on the
held-out half the report gives the expected calibration error (ECE: confidence = the top label's
probability, correct = the top label is the gold label) and the NLL before and after, and the accuracy
(which calibration never changes). The calibration file records the model it was fitted for; the runtime
applies it to that model only (``SOCFLOW_MODEL__CALIBRATION``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from socflow.calibration import Calibration, CalibrationError, apply_temperature, fit_temperature, nll
from socflow.evaluation import metrics
from socflow.evaluation.report import EvalReport, ItemResult
from socflow.evaluation.tasks import EvalOptions
from socflow.evaluation.triage import read_rows
from socflow.model.base import CallContext, Message
from socflow.normalize import make_normalizer

ScoringPrompt = Callable[[str, str, str], "str | Sequence[Message]"]

#: The fewest items each half needs for a fit worth writing.
MIN_ITEMS = 20


def _top(scores: Mapping[str, float]) -> tuple[str, float]:
    label = max(sorted(scores), key=lambda k: scores[k])
    return label, float(scores[label])


def ece(items: Sequence[tuple[Mapping[str, float], str]], temperature: float = 1.0) -> float:
    confidences, correct = [], []
    for scores, gold in items:
        label, confidence = _top(apply_temperature(scores, temperature))
        confidences.append(confidence)
        correct.append(label == gold)
    return round(float(metrics.calibration(confidences, correct)["ece"]), 4)


def fit(opts: EvalOptions, out: Path, prompt_for: ScoringPrompt, labels: tuple[str, ...]) -> EvalReport:
    """Score every row, fit on one half, measure on the other, write ``out`` (see the module docstring)."""
    if opts.model is None:
        raise CalibrationError("--fit-calibration needs a model that scores labels (--model ...)")
    rows = read_rows(opts.dataset)
    rows = rows[: opts.limit] if opts.limit is not None else rows
    opts.on_total(len(rows))
    normalize = make_normalizer()
    scored: list[tuple[dict[str, float], str]] = []
    items: list[ItemResult] = []
    for line, row in rows:
        item = ItemResult(id=f"line-{line}", label={"label": row["label"]})
        with opts.measure(item):
            alert = normalize(dict(row["alert"]))
            prompt = prompt_for(
                str(alert.get("title") or ""),
                str(alert.get("severity") or "medium"),
                str(alert.get("description") or ""),
            )
            scores = opts.model.score_labels(prompt, labels, ctx=CallContext(node="assess_case"))
        item.prediction = {"scores": {k: round(float(v), 4) for k, v in scores.items()}}
        scored.append((dict(scores), row["label"]))
        items.append(item)
    fit_half, held_out = scored[0::2], scored[1::2]
    if len(fit_half) < MIN_ITEMS or len(held_out) < MIN_ITEMS:
        raise CalibrationError(f"{len(scored)} items: at least {2 * MIN_ITEMS} are needed to fit and measure")
    temperature = fit_temperature(fit_half)
    before, after = ece(held_out), ece(held_out, temperature)
    accuracy = sum(1 for s, g in held_out if _top(s)[0] == g) / len(held_out)
    calibration = Calibration.new(
        opts.model.model_id,
        temperature,
        len(fit_half),
        labels,
        ece_before=before,
        ece_after=after,
        held_out=len(held_out),
        dataset=str(opts.dataset),
    )
    calibration.write(out)
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model=opts.model_name,
        workflow_version="alert_triage scoring prompt",
        counts={
            "items": len(scored),
            "fit_items": len(fit_half),
            "held_out_items": len(held_out),
            **{f"gold_{label}": sum(1 for _, g in scored if g == label) for label in labels},
        },
        metrics={
            "temperature": temperature,
            "held_out_ece_before": before,
            "held_out_ece_after": after,
            "held_out_nll_before": round(nll(held_out, 1.0), 4),
            "held_out_nll_after": round(nll(held_out, temperature), 4),
            "held_out_accuracy": round(accuracy, 4),
        },
        notes=[f"calibration written to {out} for model {opts.model.model_id}"],
        items=items,
    )
