"""Confidence calibration: temperature scaling of the verdict label scores.

The triage confidence is the probability of the verdict among the verdict labels, from the model's label
log-likelihoods (``score_labels``: a softmax over mean log-probabilities). Such probabilities are often
over- or under-confident. Temperature scaling divides the log-probabilities by one fitted number ``T``
before the softmax again: ``p_i' = softmax(log p_i / T)`` — ``T > 1`` softens, ``T < 1`` sharpens, and the
ranking of the labels never changes.

``fit_temperature`` chooses ``T`` minimising the negative log-likelihood of the gold labels;
``socflow eval triage DATA --fit-calibration FILE`` fits it on half the labelled items, reports the
expected calibration error (ECE) before and after on the other half, and writes ``FILE``. The runtime
loads it from ``SOCFLOW_MODEL__CALIBRATION`` and applies it only to the model it was fitted for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socflow.errors import SocflowError

__all__ = ["Calibration", "CalibrationError", "apply_temperature", "fit_temperature", "load_calibration"]

FORMAT = 1
MIN_T, MAX_T = 0.05, 20.0
_FLOOR = 1e-9


class CalibrationError(SocflowError):
    code = "calibration_invalid"


def apply_temperature(scores: Mapping[str, float], temperature: float) -> dict[str, float]:
    """``softmax(log p / T)`` over the labels of ``scores`` (probabilities that sum to 1)."""
    logits = {k: math.log(max(float(v), _FLOOR)) / temperature for k, v in scores.items()}
    top = max(logits.values(), default=0.0)
    exps = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exps.values()) or 1.0
    return {k: v / total for k, v in exps.items()}


def nll(items: Sequence[tuple[Mapping[str, float], str]], temperature: float) -> float:
    """Mean negative log-likelihood of the gold labels after scaling."""
    if not items:
        return 0.0
    total = 0.0
    for scores, gold in items:
        total -= math.log(max(apply_temperature(scores, temperature).get(gold, 0.0), _FLOOR))
    return total / len(items)


def fit_temperature(items: Sequence[tuple[Mapping[str, float], str]]) -> float:
    """The ``T`` in [0.05, 20] with the least NLL: a log-spaced grid, then golden-section refinement."""
    if not items:
        raise CalibrationError("no labelled items to fit a calibration on")
    grid = [MIN_T * (MAX_T / MIN_T) ** (i / 80) for i in range(81)]
    best = min(range(len(grid)), key=lambda i: nll(items, grid[i]))
    lo, hi = math.log(grid[max(0, best - 1)]), math.log(grid[min(len(grid) - 1, best + 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(items, math.exp(a)) <= nll(items, math.exp(b)):
            hi = b
        else:
            lo = a
    return round(math.exp((lo + hi) / 2), 4)


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature for one model, with what it was fitted on."""

    model: str
    temperature: float
    items: int
    labels: tuple[str, ...]
    ece_before: float | None = None
    ece_after: float | None = None
    held_out: int = 0
    fitted_at: str = ""
    dataset: str = ""

    def apply(self, scores: Mapping[str, float]) -> dict[str, float]:
        return apply_temperature(scores, self.temperature)

    def describe(self) -> str:
        return f"calibrated: temperature {self.temperature:g} fitted on {self.items} labelled items"

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "labels": list(self.labels)}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def new(
        cls, model: str, temperature: float, items: int, labels: Sequence[str], **extra: Any
    ) -> Calibration:
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
        return cls(
            model=model, temperature=temperature, items=items, labels=tuple(labels), fitted_at=stamp, **extra
        )


def load_calibration(path: Path) -> Calibration:
    """A calibration file written by ``--fit-calibration``; ``CalibrationError`` when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read a calibration ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CalibrationError(f"{path}: not a socflow calibration file (format {FORMAT})")
    try:
        temperature = float(doc["temperature"])
        items = int(doc["items"])
        model = str(doc["model"])
        labels = tuple(str(x) for x in doc["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{path}: missing or invalid field ({exc})") from exc
    if not MIN_T <= temperature <= MAX_T or items < 1 or not labels:
        raise CalibrationError(f"{path}: temperature must be in [{MIN_T}, {MAX_T}] and items >= 1")
    return Calibration(
        model=model,
        temperature=temperature,
        items=items,
        labels=labels,
        ece_before=doc.get("ece_before"),
        ece_after=doc.get("ece_after"),
        held_out=int(doc.get("held_out") or 0),
        fitted_at=str(doc.get("fitted_at") or ""),
        dataset=str(doc.get("dataset") or ""),
    )
