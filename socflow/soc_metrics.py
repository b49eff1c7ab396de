"""How the SOC is doing: the figures behind the dashboard, ``GET /api/v1/metrics/soc`` and ``socflow stats``.

All figures cover the cases opened (``cases.created_at``), the alerts received and the model calls made
within a time range ``[since, until)``:

- time to acknowledge: case opened -> ``cases.acknowledged_at`` (the first analyst action: opening the
  case page, an assignment or a decision); time to decide: case opened -> its first analyst decision
  (``approvals.created_at``). Each as count, mean and the 50th/90th/95th percentiles in seconds
  (nearest rank: the smallest value with at least p % of the values at or below it).
- cases by status, severity and verdict;
- auto-close rate: cases closed without any analyst decision (the policy closed them; merged cases
  excluded) over the cases opened;
- analyst agreement with the model: the share of decisions that neither edited the note nor overrode the
  verdict (a ``case.labelled`` event whose verdict differs from the model's);
- alert volume per day (or per hour for ranges up to two days), per rule and per source (the top
  ``TOP_N``, the rest summed as ``other``);
- model calls per day: count, mean and 90th-percentile latency (ms), prompt and completion tokens.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socflow.enums import CaseStatus
from socflow.errors import InputError
from socflow.schemas import now_utc
from socflow.tables import Alert, Approval, AuditEvent, Case, ModelCall

__all__ = ["RANGES", "TimeRange", "percentile", "soc_metrics"]

TOP_N = 8
RANGES: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "7d"
MAX_SPAN = timedelta(days=366)
PERCENTILES = (50, 90, 95)


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime
    label: str

    @classmethod
    def parse(
        cls,
        range_: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        now: datetime | None = None,
    ) -> TimeRange:
        """A named range (``24h``, ``7d``, ``30d``, ``90d``) ending now, or explicit ``since``/``until``."""
        now = now or now_utc()
        if since is not None or until is not None:
            end = _utc(until) if until else now
            start = _utc(since) if since else end - RANGES[DEFAULT_RANGE]
            if start >= end:
                raise InputError("since must be before until", field="since")
            if end - start > MAX_SPAN:
                raise InputError("the range may span at most 366 days", field="since")
            return cls(start, end, "custom")
        name = range_ or DEFAULT_RANGE
        if name not in RANGES:
            raise InputError(f"range must be one of {', '.join(RANGES)}", field="range")
        return cls(now - RANGES[name], now, name)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _durations(values: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "count": len(values),
        "mean_seconds": (sum(values) / len(values)) if values else None,
    }
    for p in PERCENTILES:
        out[f"p{p}_seconds"] = percentile(values, p)
    return out


def _bucket(at: datetime, hourly: bool) -> str:
    at = _utc(at)
    return at.strftime("%Y-%m-%dT%H:00Z") if hourly else at.strftime("%Y-%m-%d")


def _buckets(tr: TimeRange, hourly: bool) -> list[str]:
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    start = tr.since.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        start = start.replace(hour=0)
    out: list[str] = []
    at = start
    while at < tr.until:
        out.append(_bucket(at, hourly))
        at += step
    return out


def _series(rows: list[tuple[datetime, str]], tr: TimeRange, hourly: bool) -> dict[str, Any]:
    """Counts per bucket per key: the top keys by total, the rest summed as ``other``."""
    totals = Counter(key for _, key in rows)
    top = [k for k, _ in totals.most_common(TOP_N)]
    buckets = _buckets(tr, hourly)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for at, key in rows:
        counts[key if key in top else "other"][_bucket(at, hourly)] += 1
    keys = top + (["other"] if "other" in counts else [])
    return {
        "buckets": buckets,
        "series": [
            {"key": k, "total": sum(counts[k].values()), "counts": [counts[k][b] for b in buckets]}
            for k in keys
        ],
    }


def soc_metrics(session: Session, tr: TimeRange) -> dict[str, Any]:
    """Every dashboard figure for the range ``tr`` (JSON-plain)."""
    hourly = tr.until - tr.since <= timedelta(days=2)
    cases = list(session.scalars(select(Case).where(Case.created_at >= tr.since, Case.created_at < tr.until)))
    ids = [c.id for c in cases]
    first_decision: dict[int, datetime] = {}
    decisions: list[tuple[int, str]] = []
    overridden: set[int] = set()
    merged: set[int] = set()
    if ids:
        for cid, at in session.execute(
            select(Approval.case_id, func.min(Approval.created_at))
            .where(Approval.case_id.in_(ids))
            .group_by(Approval.case_id)
        ):
            if cid is not None:
                first_decision[int(cid)] = _utc(at)
        decisions = [
            (int(cid), str(dec))
            for cid, dec in session.execute(
                select(Approval.case_id, Approval.decision).where(Approval.case_id.in_(ids))
            )
            if cid is not None
        ]
        for cid, action, data in session.execute(
            select(AuditEvent.case_id, AuditEvent.action, AuditEvent.data).where(
                AuditEvent.case_id.in_(ids), AuditEvent.action.in_(("case.labelled", "case.merged"))
            )
        ):
            data = data or {}
            if action == "case.merged":
                merged.add(int(data.get("from_case") or cid))
            elif data.get("verdict") and data.get("verdict") != data.get("model_verdict"):
                overridden.add(int(cid))

    to_ack = [
        (_utc(c.acknowledged_at) - _utc(c.created_at)).total_seconds() for c in cases if c.acknowledged_at
    ]
    to_decide = [
        (first_decision[c.id] - _utc(c.created_at)).total_seconds() for c in cases if c.id in first_decision
    ]
    auto_closed = [
        c.id
        for c in cases
        if c.status == CaseStatus.closed.value and c.id not in first_decision and c.id not in merged
    ]
    agreeing = [cid for cid, dec in decisions if dec != "edit" and cid not in overridden]

    alerts = list(
        session.execute(
            select(Alert.received_at, Alert.rule_id, Alert.source).where(
                Alert.received_at >= tr.since, Alert.received_at < tr.until
            )
        )
    )
    calls = list(
        session.execute(
            select(
                ModelCall.created_at,
                ModelCall.latency_ms,
                ModelCall.prompt_tokens,
                ModelCall.completion_tokens,
            ).where(ModelCall.created_at >= tr.since, ModelCall.created_at < tr.until)
        )
    )
    per_day: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for at, latency, prompt, completion in calls:
        per_day[_bucket(at, False)].append((float(latency or 0.0), int(prompt or 0), int(completion or 0)))
    model_days: list[dict[str, Any]] = []
    for day in _buckets(tr, False):
        items = per_day.get(day, [])
        latencies = [x[0] for x in items]
        model_days.append(
            {
                "day": day,
                "calls": len(items),
                "mean_latency_ms": (sum(latencies) / len(latencies)) if latencies else None,
                "p90_latency_ms": percentile(latencies, 90),
                "prompt_tokens": sum(x[1] for x in items),
                "completion_tokens": sum(x[2] for x in items),
            }
        )

    return {
        "range": {"label": tr.label, "since": tr.since.isoformat(), "until": tr.until.isoformat()},
        "cases": {
            "opened": len(cases),
            "by_status": dict(Counter(c.status for c in cases).most_common()),
            "by_severity": dict(Counter(c.severity for c in cases).most_common()),
            "by_verdict": dict(Counter(c.verdict or "none" for c in cases).most_common()),
        },
        "time_to_acknowledge": _durations(to_ack),
        "time_to_decide": _durations(to_decide),
        "auto_close": {
            "closed_automatically": len(auto_closed),
            "rate": (len(auto_closed) / len(cases)) if cases else None,
        },
        "agreement": {
            "decisions": len(decisions),
            "agreeing": len(agreeing),
            "rate": (len(agreeing) / len(decisions)) if decisions else None,
        },
        "alerts": {
            "received": len(alerts),
            "granularity": "hour" if hourly else "day",
            "by_rule": _series([(at, rule or "(no rule)") for at, rule, _ in alerts], tr, hourly),
            "by_source": _series([(at, src) for at, _, src in alerts], tr, hourly),
        },
        "model": {
            "calls": len(calls),
            "tokens": sum(d["prompt_tokens"] + d["completion_tokens"] for d in model_days),
            "per_day": model_days,
        },
    }
