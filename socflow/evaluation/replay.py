"""``replay`` (shadow mode): re-run closed cases with another model or workflow version and diff the result
against what analysts approved.

DATASET is a socflow SQLite database file; it is opened read-only and never written. For each case that is
``closed`` or ``escalated`` with an approved note, its alerts are re-ingested as one case into a fresh
database of this run and ``alert_triage`` advances with the chosen model. Compared with the approved case:
the verdict (the analyst's label when one was recorded with ``case.labelled``, else the case's verdict),
the technique set (analyst-labelled techniques when present, else the case's) and the note text.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from socflow.db import make_engine, session_factory
from socflow.enums import CaseStatus, NoteStatus
from socflow.evaluation import metrics
from socflow.evaluation.datasets import DatasetError
from socflow.evaluation.report import EvalReport, ItemResult
from socflow.evaluation.tasks import EvalOptions
from socflow.evaluation.triage import POSITIVE_VERDICTS, TriageHarness
from socflow.grouping import Assignment
from socflow.store import CaseStore
from socflow.tables import Alert, AuditEvent, Case

DONE = [CaseStatus.closed.value, CaseStatus.escalated.value]


class IntoOneCase:
    """A grouper that puts every alert of one replayed case into the same new case."""

    def __init__(self) -> None:
        self.case_id: int | None = None

    def assign(self, store: CaseStore, alert: Any, *, actor: str) -> Assignment:
        if self.case_id is None:
            case = store.create_case(title=alert.title, severity=alert.severity, actor=actor)
            self.case_id = case.id
            return Assignment(case=case, created=True, grouping_key=None, reason="replay")
        return Assignment(
            case=store.get_case(self.case_id), created=False, grouping_key=None, reason="replay"
        )


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "source": alert.source,
        "source_ref": f"replay-{alert.id}",
        "title": alert.title,
        "severity": alert.severity,
        "timestamp": alert.observed_at.isoformat() if alert.observed_at else None,
        "description": alert.description,
        "rule": {"id": alert.rule_id, "name": alert.rule_name, "tags": list(alert.rule_tags or [])},
        "entities": alert.entities or {},
        "raw": alert.raw or {},
    }


def approved_cases(url: str, limit: int | None) -> list[dict[str, Any]]:
    """What analysts approved, per done case: verdict, techniques, note, and the alerts to replay."""
    factory = session_factory(make_engine(url))
    out: list[dict[str, Any]] = []
    with factory() as session:
        store = CaseStore(session)
        cases = session.scalars(select(Case).where(Case.status.in_(DONE)).order_by(Case.id))
        for case in cases:
            note = store.get_note(case.id)
            if note is None or note.status != NoteStatus.approved.value:
                continue
            labelled = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.case_id == case.id, AuditEvent.action == "case.labelled")
                .order_by(AuditEvent.id.desc())
            ).first()
            techniques = store.list_techniques(case.id)
            analyst = {t.technique_id for t in techniques if t.source == "analyst"}
            verdict = (labelled.data or {}).get("verdict") if labelled is not None else None
            out.append(
                {
                    "case_id": case.id,
                    "verdict": verdict or case.verdict,
                    "techniques": sorted(analyst or {t.technique_id for t in techniques}),
                    "note": store.get_current_revision(note).body,
                    "alerts": [alert_payload(a) for a in store.list_alerts(case_id=case.id, limit=50)],
                }
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def run(opts: EvalOptions) -> EvalReport:
    if not opts.dataset.is_file():
        raise DatasetError(f"{opts.dataset}: replay needs a socflow SQLite database file")
    copy = opts.workdir / "replay-source.db"
    for suffix in ("", "-wal", "-shm"):  # a copy: the analysts' database is never opened for writing
        if Path(f"{opts.dataset}{suffix}").is_file():
            shutil.copyfile(f"{opts.dataset}{suffix}", f"{copy}{suffix}")
    cases = approved_cases(f"sqlite:///{copy}", opts.limit)
    opts.on_total(len(cases))
    grouper = IntoOneCase()
    harness = TriageHarness(opts, grouper=grouper)
    items: list[ItemResult] = []
    gold_sets: list[set[str]] = []
    pred_sets: list[set[str]] = []
    for approved in cases:
        grouper.case_id = None
        item = ItemResult(
            id=f"case-{approved['case_id']}",
            label={k: approved[k] for k in ("verdict", "techniques", "note")},
        )
        with opts.measure(item):
            item.prediction, item.error = harness.triage(approved["alerts"])
        new_note = item.prediction.get("note") or ""
        item.prediction["note_similarity"] = round(
            difflib.SequenceMatcher(None, approved["note"], new_note).ratio(), 4
        )
        items.append(item)
        gold_sets.append(set(approved["techniques"]))
        pred_sets.append(set(item.prediction.get("techniques", [])))
    gold = [i.label["verdict"] in POSITIVE_VERDICTS for i in items]
    pred = [(i.prediction.get("verdict") or "needs_review") in POSITIVE_VERDICTS for i in items]
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model=opts.model_name,
        workflow_version=harness.workflow_version,
        counts={"cases": len(items), "errors": sum(1 for i in items if i.error)},
        metrics={
            "verdict_agreement": metrics.mean(
                1.0 if i.prediction.get("verdict") == i.label["verdict"] else 0.0 for i in items
            ),
            "verdict_changed": sum(1 for i in items if i.prediction.get("verdict") != i.label["verdict"]),
            "escalation": metrics.binary_scores(gold, pred),
            "techniques": metrics.set_scores(gold_sets, pred_sets),
            "note_similarity_mean": metrics.mean(i.prediction["note_similarity"] for i in items),
        },
        items=items,
    )
