"""Cases, decisions, alerts and model calls with known timestamps, for the dashboard tests.

The expected figures are written out by hand in ``EXPECTED`` (not computed by ``socflow.soc_metrics``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from socflow.db import make_engine, session_factory
from socflow.tables import Alert, Approval, AuditEvent, Case, ModelCall, WorkflowRun

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SINCE = "2026-03-01T00:00:00+00:00"
UNTIL = "2026-03-08T00:00:00+00:00"

# (opened after T0, status, verdict, acknowledged after opening (s), decision, decided after opening (s))
CASES: list[tuple[timedelta, str, str, int | None, str | None, int | None]] = [
    (timedelta(hours=0), "closed", "false_positive", 60, "approve", 600),
    (timedelta(hours=1), "closed", "benign_positive", 300, "edit", 1200),
    (timedelta(hours=2), "escalated", "true_positive", 900, "approve", 3600),  # verdict overridden below
    (timedelta(hours=3), "closed", "false_positive", None, None, None),  # auto-closed by the policy
    (timedelta(hours=4), "awaiting_approval", "true_positive", 120, None, None),
]

# by hand: acknowledged after 60, 300, 900, 120 s -> mean 345; sorted 60 120 300 900: p50 = 2nd = 120,
# p90 = p95 = 4th = 900. decided after 600, 1200, 3600 -> mean 1800, p50 = 2nd = 1200, p90 = 3rd = 3600.
# one auto-closed of five opened = 20 %. decisions: approve (agrees), edit (no), approve with a verdict
# override (no) -> 1 of 3 agree.
EXPECTED: dict[str, Any] = {
    "tta": {"count": 4, "mean": 345.0, "p50": 120.0, "p90": 900.0, "p95": 900.0, "mean_text": "5.8 min"},
    "ttd": {"count": 3, "mean": 1800.0, "p50": 1200.0, "p90": 3600.0, "p95": 3600.0, "mean_text": "30.0 min"},
    "status": {"closed": 3, "escalated": 1, "awaiting_approval": 1},
    "severity": {"high": 5},
    "auto_close": (1, 0.2, "20%"),
    "agreement": (1, 3, "33%"),
    "rules": {"r-alpha": 3, "r-beta": 2},
    "sources": {"edr": 3, "siem": 2},
    "model_calls": 3,
    "tokens": 10 + 5 + 20 + 5 + 7 + 3,
}


def seed(db_url: str) -> list[int]:
    factory = session_factory(make_engine(db_url))
    ids: list[int] = []
    with factory() as s, s.begin():
        old = Case(
            title="opened before the range",
            status="closed",
            severity="low",
            created_at=T0 - timedelta(days=20),
            updated_at=T0 - timedelta(days=20),
            acknowledged_at=T0 - timedelta(days=20) + timedelta(hours=9),
        )
        s.add(old)
        for i, (after, status, verdict, ack, decision, decided) in enumerate(CASES):
            opened = T0 + after
            case = Case(
                title=f"seeded case {i}",
                status=status,
                severity="high",
                verdict=verdict,
                created_at=opened,
                updated_at=opened,
                acknowledged_at=opened + timedelta(seconds=ack) if ack is not None else None,
                acknowledged_by="ana" if ack is not None else None,
            )
            s.add(case)
            s.flush()
            ids.append(case.id)
            if decision is not None and decided is not None:
                run = WorkflowRun(
                    id=str(uuid.uuid4()),
                    workflow="alert_triage",
                    workflow_version="1",
                    case_id=case.id,
                    status="completed",
                    created_at=opened,
                    updated_at=opened,
                )
                s.add(run)
                s.flush()
                s.add(
                    Approval(
                        run_id=run.id,
                        case_id=case.id,
                        interrupt_id=f"i-{case.id}",
                        decision=decision,
                        user="ana",
                        created_at=opened + timedelta(seconds=decided),
                    )
                )
        s.add(
            AuditEvent(
                at=T0 + timedelta(hours=3),
                actor="ana",
                action="case.labelled",
                entity_type="case",
                entity_id=str(ids[2]),
                case_id=ids[2],
                data={"verdict": "false_positive", "model_verdict": "true_positive", "techniques": []},
            )
        )
        for n, (rule, source) in enumerate(
            [
                ("r-alpha", "edr"),
                ("r-alpha", "edr"),
                ("r-alpha", "siem"),
                ("r-beta", "edr"),
                ("r-beta", "siem"),
            ]
        ):
            s.add(
                Alert(
                    source=source,
                    dedup_key=f"seed-{n}",
                    received_at=T0 + timedelta(days=n % 2, minutes=n),
                    title=f"seeded alert {n}",
                    severity="high",
                    rule_id=rule,
                    rule_tags=[],
                    entities={},
                    case_id=ids[0],
                )
            )
        for at, latency, prompt, completion in (
            (T0, 100.0, 10, 5),
            (T0 + timedelta(hours=1), 300.0, 20, 5),
            (T0 + timedelta(days=1), 50.0, 7, 3),
        ):
            s.add(
                ModelCall(
                    created_at=at,
                    method="generate",
                    backend="scripted",
                    model_id="scripted",
                    prompt="p",
                    latency_ms=latency,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                )
            )
    return ids
