"""Autonomy policy as code: when may a case close without a human?

Loaded from YAML (``SOCFLOW_POLICY__FILE``) into ``Policy`` and carried in the run context; nodes never
read settings. Every input to ``decide`` is a typed fact from the database or a log-likelihood score —
never text the model or the alert wrote — so alert text cannot move the decision.

Example file::

    auto_close:
      - verdicts: [false_positive]
        max_severity: low
        min_confidence: 0.9
        rules: [sample-schtasks]        # engineer-maintained allowlist of rule ids
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from socflow.enums import Severity, Verdict
from socflow.errors import ConfigError


class AutoCloseRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdicts: list[Verdict] = Field(default_factory=lambda: [Verdict.false_positive], min_length=1)
    max_severity: Severity = Severity.low
    min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    rules: list[str] = Field(default_factory=list, description="rule ids allowed to auto-close")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_close: list[AutoCloseRule] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise ConfigError(f"policy file {path}: {exc}") from exc


class CaseFacts(BaseModel):
    """What the policy looks at: all from the database and the scorer."""

    severity: Severity
    verdict: Verdict
    confidence: float
    rule_ids: list[str]


class PolicyDecision(BaseModel):
    auto_close: bool
    reason: str


def decide(policy: Policy, facts: CaseFacts) -> PolicyDecision:
    for i, rule in enumerate(policy.auto_close):
        if (
            facts.verdict in rule.verdicts
            and facts.severity.rank <= rule.max_severity.rank
            and facts.confidence >= rule.min_confidence
            and facts.rule_ids
            and all(r in rule.rules for r in facts.rule_ids)
        ):
            return PolicyDecision(
                auto_close=True,
                reason=f"auto_close rule {i}: {facts.verdict} at confidence {facts.confidence:.2f}, "
                f"severity {facts.severity} <= {rule.max_severity}, rules allowlisted",
            )
    return PolicyDecision(auto_close=False, reason="needs approval: no auto-close rule matched")
