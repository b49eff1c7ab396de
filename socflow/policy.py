"""Autonomy policy as code: when may a case close without a human?

Loaded from YAML (``SOCFLOW_POLICY__FILE``) into ``Policy`` and carried in the run context; nodes never
read settings. Every input to ``decide`` is a typed fact from the database or a log-likelihood score —
never text the model or the alert wrote — and the facts come from places a sender cannot steer:

- **source**: an auto-close rule names one ``source``; every alert of the case must come from it AND have
  been sent by a token bound to that source (``socflow token create --source``), or by an operator door
  (CLI, connectors, the folder watcher). A token without sources may send anything, but its alerts never
  auto-close.
- **rule id**: every alert's rule id must be on the rule's allow-list (``rules``) for that source.
- **severity**: from the policy's rule entry (``rules: {rule-id: severity}``); a list entry
  (``rules: [rule-id]``) takes the alert's severity as the bound source mapped it (the vendor severity
  map of ``socflow.normalize``). The sender's field alone never decides: an unbound sender never passes.
- **injection**: no alert of the case may carry an injection flag (``socflow.injection``).
- **intel_match**: an observable of the case matched a threat-intel indicator (evidence of kind
  ``threat_intel``, written by the intel evidence provider from the indicator store or MISP, never from
  alert or model text). A case with a match never auto-closes, and ``raise_priority`` rules lift its
  priority (never lower it) when the best match's confidence is at least ``min_intel_confidence``.

Example file::

    auto_close:
      - source: edr-prod                # alerts from this source, sent by a token bound to it
        verdicts: [false_positive]
        max_severity: low
        min_confidence: 0.9
        rules:                          # engineer-maintained allow-list of rule ids for that source
          sample-schtasks: low          # the severity the policy assigns to this rule
    raise_priority:
      - when: intel_match               # an observable matched a threat-intel indicator
        min_intel_confidence: 50        # the best match's confidence (0-100; unknown counts as 0)
        priority: high                  # the case's priority is at least this
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.enums import Priority, Severity, Verdict
from socflow.errors import ConfigError
from socflow.tables import Alert, Case, Evidence

INTEL_EVIDENCE_KIND = "threat_intel"  # the evidence kind of threat-intel matches (tools.intel.evidence)
PRIORITY_ORDER = [Priority.low, Priority.medium, Priority.high, Priority.critical]


class AutoCloseRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=200, description="the alert source this rule covers")
    verdicts: list[Verdict] = Field(default_factory=lambda: [Verdict.false_positive], min_length=1)
    max_severity: Severity = Severity.low
    min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    rules: dict[str, Severity | None] = Field(
        default_factory=dict, description="rule ids allowed to auto-close -> the severity the policy gives"
    )

    @field_validator("rules", mode="before")
    @classmethod
    def _list_form(cls, value: object) -> object:
        if isinstance(value, list):
            return dict.fromkeys(value)
        return value


class RaisePriorityRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: Literal["intel_match"] = Field(description="the fact that raises the priority")
    min_intel_confidence: int = Field(default=0, ge=0, le=100)
    priority: Priority


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_close: list[AutoCloseRule] = Field(default_factory=list)
    raise_priority: list[RaisePriorityRule] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise ConfigError(f"policy file {path}: {exc}") from exc


class AlertFacts(BaseModel):
    """One alert of the case, as stored: who may have sent it is a fact of ingest, not of its text."""

    source: str
    rule_id: str | None
    severity: Severity
    sender_bound: bool
    injection: bool


class CaseFacts(BaseModel):
    """What the policy looks at: all from the database and the scorer."""

    severity: Severity
    verdict: Verdict
    confidence: float
    rule_ids: list[str]
    alerts: list[AlertFacts] = Field(default_factory=list)
    injection: bool = False
    intel_match: bool = False
    intel_confidence: int | None = Field(default=None, description="the best match's confidence (0-100)")


class PolicyDecision(BaseModel):
    auto_close: bool
    reason: str
    priority: Priority | None = Field(default=None, description="the least priority the case must have")
    priority_reason: str | None = None


def case_facts(
    factory: sessionmaker[Session], case_id: int, *, verdict: Verdict, confidence: float
) -> CaseFacts:
    """The facts of a case from the database (every alert, not a page of them) and the scorer."""
    with factory() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise ConfigError(f"case {case_id} does not exist")  # pragma: no cover - the run holds a case
        rows = session.execute(
            select(Alert.source, Alert.rule_id, Alert.severity, Alert.sender_bound, Alert.injection_flag)
            .where(Alert.case_id == case_id)
            .order_by(Alert.id)
        ).all()
        intel = [
            d.get("max_confidence") if isinstance(d, dict) else None
            for d in session.scalars(
                select(Evidence.data).where(Evidence.case_id == case_id, Evidence.kind == INTEL_EVIDENCE_KIND)
            )
        ]
        confidences = [int(c) for c in intel if isinstance(c, int | float) and 0 <= c <= 100]
        return CaseFacts(
            severity=Severity(case.severity),
            verdict=verdict,
            confidence=confidence,
            rule_ids=sorted({r.rule_id or "" for r in rows}),
            alerts=[
                AlertFacts(
                    source=r.source,
                    rule_id=r.rule_id,
                    severity=Severity(r.severity),
                    sender_bound=bool(r.sender_bound),
                    injection=bool(r.injection_flag),
                )
                for r in rows
            ],
            injection=bool(case.injection_flag),
            intel_match=bool(intel),
            intel_confidence=max(confidences) if confidences else None,
        )


def _refusal(rule: AutoCloseRule, facts: CaseFacts) -> str | None:
    """Why ``rule`` does not auto-close the case (``None``: it does)."""
    if facts.injection or any(a.injection for a in facts.alerts):
        return "an alert of the case is flagged as a prompt-injection attempt"
    if not facts.alerts:
        return "no alert facts"
    if facts.intel_match:
        return "an observable of the case matched a threat-intel indicator"
    if facts.verdict not in rule.verdicts:
        return f"verdict {facts.verdict} is not auto-closed"
    if facts.confidence < rule.min_confidence:
        return f"confidence {facts.confidence:.2f} < {rule.min_confidence}"
    for a in facts.alerts:
        if a.source != rule.source:
            return f"an alert comes from source {a.source!r}, not {rule.source!r}"
        if not a.sender_bound:
            return f"an alert was not sent by a token bound to source {rule.source!r}"
        if a.rule_id is None or a.rule_id not in rule.rules:
            return f"rule {a.rule_id!r} is not on the allow-list for {rule.source!r}"
        severity = rule.rules[a.rule_id] or a.severity
        if severity.rank > rule.max_severity.rank:
            return f"rule {a.rule_id!r} has severity {severity} > {rule.max_severity}"
    return None


def raised_priority(policy: Policy, facts: CaseFacts) -> tuple[Priority, str] | None:
    """The highest priority a ``raise_priority`` rule gives the case, and why (``None``: no rule applies)."""
    best: tuple[Priority, str] | None = None
    for i, rule in enumerate(policy.raise_priority):
        confidence = facts.intel_confidence or 0
        applies = rule.when == "intel_match" and facts.intel_match and confidence >= rule.min_intel_confidence
        if applies and (best is None or priority_rank(rule.priority) > priority_rank(best[0])):
            best = (
                rule.priority,
                f"raise_priority rule {i}: threat-intel match at confidence {confidence} >= "
                f"{rule.min_intel_confidence}",
            )
    return best


def decide(policy: Policy, facts: CaseFacts) -> PolicyDecision:
    raised = raised_priority(policy, facts)
    priority = {"priority": raised[0], "priority_reason": raised[1]} if raised else {}
    reasons: list[str] = []
    for i, rule in enumerate(policy.auto_close):
        why = _refusal(rule, facts)
        if why is None:
            return PolicyDecision(
                auto_close=True,
                reason=f"auto_close rule {i} ({rule.source}): {facts.verdict} at confidence "
                f"{facts.confidence:.2f}, rules allowlisted, severity <= {rule.max_severity}, "
                "senders bound to the source, no injection flag",
                **priority,
            )
        reasons.append(f"rule {i}: {why}")
    detail = "; ".join(reasons) if reasons else "no auto-close rule"
    return PolicyDecision(auto_close=False, reason=f"needs approval: {detail}"[:1000], **priority)


def priority_rank(priority: Priority | str | None) -> int:
    """The order of priorities (``None`` or an unknown value: below low)."""
    try:
        return PRIORITY_ORDER.index(Priority(priority)) if priority else -1
    except ValueError:
        return -1
