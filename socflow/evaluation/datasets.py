"""Reading evaluation datasets: JSONL rows, log-folder labels (``labels.csv`` / ``labels.jsonl``), globs.

Every reader raises ``DatasetError`` (an ``InputError``) with the file and line on bad input.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from socflow.errors import InputError


class DatasetError(InputError):
    """A dataset file is missing or malformed."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with path.open("r", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{line_no}: invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{line_no}: expected a JSON object")
            yield line_no, row


def split_ids(value: Any) -> list[str]:
    """``"T1059;T1003.001"`` or a JSON list -> ids, stripped, order kept, no repeats."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else str(value).replace(",", ";").split(";")
    return list(dict.fromkeys(str(p).strip() for p in parts if str(p).strip()))


class LogLabel(BaseModel):
    """One labelled log file (paths relative to the dataset folder)."""

    file: str
    technique_ids: list[str] = Field(default_factory=list)
    technique_ids_v18_1: list[str] | None = None
    tactic_ids: list[str] = Field(default_factory=list)
    tactics: list[str] = Field(default_factory=list)


def _label(row: dict[str, Any], where: str) -> LogLabel:
    if not row.get("file"):
        raise DatasetError(f"{where}: no 'file'")
    v18 = row.get("technique_ids_v18_1")
    return LogLabel(
        file=str(row["file"]).strip(),
        technique_ids=split_ids(row.get("technique_ids")),
        technique_ids_v18_1=split_ids(v18) if v18 not in (None, "") else None,
        tactic_ids=split_ids(row.get("tactic_ids")),
        tactics=split_ids(row.get("tactics")),
    )


def read_log_labels(dataset: Path, labels: Path | None = None) -> list[LogLabel]:
    """``labels`` or ``DATASET/labels.csv`` or ``DATASET/labels.jsonl``; extra columns are ignored."""
    if labels is None:
        for name in ("labels.csv", "labels.jsonl"):
            if (dataset / name).is_file():
                labels = dataset / name
                break
        else:
            raise DatasetError(f"{dataset}: no labels.csv or labels.jsonl (use --labels FILE)")
    if not labels.is_file():
        raise DatasetError(f"{labels}: no such file")
    if labels.suffix == ".csv":
        with labels.open("r", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "file" not in reader.fieldnames:
                raise DatasetError(f"{labels}: no 'file' column")
            return [_label(row, f"{labels}:{n}") for n, row in enumerate(reader, start=2)]
    return [_label(row, f"{labels}:{n}") for n, row in read_jsonl(labels)]


def matches(path: str, patterns: Sequence[str]) -> bool:
    """True when no pattern is given, or ``path`` matches one (``*`` and ``**`` cross folders)."""
    return not patterns or any(fnmatch.fnmatchcase(path, p) for p in patterns)


def select(items: Iterable[Any], *, key: Any, include: Sequence[str], limit: int | None) -> list[Any]:
    out = [item for item in items if matches(key(item), include)]
    return out[:limit] if limit is not None else out
