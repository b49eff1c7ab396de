"""The evaluation report: stable JSON keys, and the flat metric rows the CLI prints as a table.

JSON (``--out``)::

    {"task", "dataset", "model", "workflow_version", "created_at", "counts", "metrics",
     "items": [{"id", "prediction", "label", "seconds", "prompt_tokens", "completion_tokens", ...}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from socflow.schemas import now_utc


class ItemResult(BaseModel):
    """One dataset item: what was predicted, the label, time and tokens spent."""

    id: str
    prediction: dict[str, Any] = Field(default_factory=dict)
    label: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    error: str | None = None


class EvalReport(BaseModel):
    task: str
    dataset: str
    model: str
    workflow_version: str | None = None
    created_at: str = Field(default_factory=lambda: now_utc().isoformat())
    counts: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    items: list[ItemResult] = Field(default_factory=list)

    def totals(self) -> dict[str, float]:
        return {
            "seconds": round(sum(i.seconds for i in self.items), 3),
            "prompt_tokens": sum(i.prompt_tokens for i in self.items),
            "completion_tokens": sum(i.completion_tokens for i in self.items),
            "model_calls": sum(i.model_calls for i in self.items),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        data["totals"] = self.totals()
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``; lists (tables) are left out of the flat view."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, name + "."))
        elif not isinstance(value, list):
            rows.append((name, value))
    return rows


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
