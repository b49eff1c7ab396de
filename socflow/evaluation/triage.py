"""``triage``: labelled alerts through the real path (ingest -> alert_triage -> persisted case).

Dataset: JSONL rows ``{"alert": {...}, "label": "true_positive" | "false_positive" | "benign_positive",
"priority": optional}``. Each alert is ingested into a fresh SQLite database of this run (one case per
alert, no SIEM), its ``alert_triage`` run is advanced with the chosen model up to the approval interrupt
or the end, and the case's verdict, confidence and priority are read back.

Positive = "a human must look at it": ``true_positive`` and ``needs_review`` predictions are positive,
``false_positive`` and ``benign_positive`` negative. ``needs_review`` is also reported as abstention.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socflow import migrate, wiring
from socflow.evaluation import metrics
from socflow.evaluation.datasets import DatasetError, read_jsonl
from socflow.evaluation.report import EvalReport, ItemResult
from socflow.evaluation.tasks import EvalOptions
from socflow.grouping import OneCasePerAlert
from socflow.ingest import IngestService
from socflow.model.recorder import ModelCallRecorder
from socflow.settings import Settings
from socflow.store import CaseStore

LABELS = {"true_positive", "false_positive", "benign_positive"}
POSITIVE_VERDICTS = {"true_positive", "needs_review"}
PRIORITIES = {"low", "medium", "high", "critical"}
WORKFLOW = "alert_triage"


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, row in read_jsonl(path):
        if not isinstance(row.get("alert"), dict):
            raise DatasetError(f"{path}:{line}: 'alert' must be an object")
        if row.get("label") not in LABELS:
            raise DatasetError(f"{path}:{line}: 'label' must be one of {sorted(LABELS)}")
        if row.get("priority") is not None and row["priority"] not in PRIORITIES:
            raise DatasetError(f"{path}:{line}: 'priority' must be one of {sorted(PRIORITIES)}")
        rows.append((line, row))
    return rows


def _alert(row: dict[str, Any], line: int) -> dict[str, Any]:
    """The alert with a per-row ``source_ref`` (generic format only), so identical rows stay separate."""
    alert = dict(row["alert"])
    if "title" in alert and "source" in alert:
        alert["source_ref"] = f"eval-line-{line}"
    return alert


def compute(items: list[ItemResult]) -> dict[str, Any]:
    """Metrics from items whose ``label`` has ``label``/``priority`` and ``prediction`` has the case."""
    gold = [i.label["label"] == "true_positive" for i in items]
    verdicts = [i.prediction.get("verdict") or "needs_review" for i in items]
    pred = [v in POSITIVE_VERDICTS for v in verdicts]
    out: dict[str, Any] = metrics.binary_scores(gold, pred)
    out["abstention_rate"] = (
        sum(1 for v in verdicts if v == "needs_review") / len(verdicts) if verdicts else 0.0
    )
    with_priority = [i for i in items if i.label.get("priority")]
    out["priority"] = metrics.macro_recall(
        [i.label["priority"] for i in with_priority], [i.prediction.get("priority") for i in with_priority]
    )
    scored = [
        (float(i.prediction["confidence"]), (v in POSITIVE_VERDICTS) == g)
        for i, v, g in zip(items, verdicts, gold, strict=True)
        if i.prediction.get("confidence") is not None and v != "needs_review"
    ]
    out["calibration"] = metrics.calibration([c for c, _ in scored], [ok for _, ok in scored])
    return out


class TriageHarness:
    """A fresh SQLite database in the work folder, the runner with the chosen model, no SIEM."""

    def __init__(self, opts: EvalOptions, *, grouper: Any = None) -> None:
        url = f"sqlite:///{opts.workdir / f'{opts.task}-eval.db'}"
        migrate.upgrade(url)
        settings = Settings(
            database={"url": url}, siem={"path": opts.workdir / "no-siem.db"}, model={"backend": "none"}
        )
        self.services = wiring.build_services(settings, model=opts.model, siem=None, dispatcher="null")
        self.factory = self.services.factory
        opts.counter.inner = ModelCallRecorder(self.factory)
        self.registry = self.services.registry
        self.runner = self.services.runner
        self.service = IngestService(
            self.factory,
            **(wiring.ingest_options(settings, self.registry) | {"grouper": grouper or OneCasePerAlert()}),
        )
        self.workflow_version = f"{WORKFLOW}@{self.registry.get(WORKFLOW).version}"

    def triage(self, alerts: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
        """Ingest ``alerts`` (one case), advance the queued runs; the case as predicted, and any error."""
        report = self.service.ingest_text("\n".join(json.dumps(a) for a in alerts), actor="eval")
        first = report.items[0]
        if first.status != "accepted" or first.case_id is None:
            return {}, f"ingest {first.status}: {first.field or ''} {first.reason or ''}".strip()
        error = None
        for run_id in report.runs_queued:
            if self.runner.advance(run_id).status.value == "failed":
                error = f"run failed: {self.runner.get(run_id).error_kind}"
        with self.factory() as session:
            store = CaseStore(session)
            case = store.get_case(first.case_id)
            note = store.get_note(case.id)
            prediction = {
                "case_id": case.id,
                "verdict": case.verdict,
                "confidence": case.confidence,
                "priority": case.priority,
                "status": case.status,
                "techniques": sorted({t.technique_id for t in store.list_techniques(case.id)}),
                "note": store.get_current_revision(note).body if note is not None else None,
            }
        return prediction, error


def run(opts: EvalOptions) -> EvalReport:
    rows = read_rows(opts.dataset)
    if opts.limit is not None:
        rows = rows[: opts.limit]
    opts.on_total(len(rows))
    harness = TriageHarness(opts)
    items: list[ItemResult] = []
    for line, row in rows:
        item = ItemResult(id=f"line-{line}", label={"label": row["label"], "priority": row.get("priority")})
        with opts.measure(item):
            prediction, item.error = harness.triage([_alert(row, line)])
        prediction.pop("note", None)
        item.prediction = prediction
        items.append(item)
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model=opts.model_name,
        workflow_version=harness.workflow_version,
        counts={
            "items": len(items),
            "errors": sum(1 for i in items if i.error),
            "positives": sum(1 for i in items if i.label["label"] == "true_positive"),
            "with_priority": sum(1 for i in items if i.label.get("priority")),
        },
        metrics=compute(items),
        items=items,
    )
