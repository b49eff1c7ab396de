"""The response-action catalog: which actions exist, what each one's target is, and which of them a
deployment enables (``SOCFLOW_ACTIONS__FILE``, a YAML file; none by default).

    connectors:
      edr-hook: {type: webhook, url: https://soar.example/hooks/socflow, secret_env: SOCFLOW_EDR_HOOK_SECRET}
      fw: {type: command, argv: [/usr/local/bin/block-ip]}
      mde: {type: defender, base_url: https://api.securitycenter.microsoft.com, token_env: MDE_TOKEN}
    actions:
      isolate_host: {connector: mde}
      block_ip: {connector: fw}
      open_ticket: {connector: edr-hook}

An action may carry ``without_approval`` (docs/actions.md): it then runs unapproved only when the
policy's trusted facts hold and no alert of the case is flagged for injection (``unattended_actions``).

Targets are typed and validated (``validate_target``) wherever they come from: a model never writes a
target, it picks one of the case's own observables, and a value that does not match its type's pattern
(``host; rm -rf /``, ``--help``) is refused before any connector sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from socflow.enums import Verdict
from socflow.errors import ConfigError, InputError
from socflow.policy import CaseFacts


class ActionId(StrEnum):
    isolate_host = "isolate_host"
    release_host = "release_host"
    disable_user = "disable_user"
    reset_credentials = "reset_credentials"
    block_ip = "block_ip"
    block_domain = "block_domain"
    block_hash = "block_hash"
    open_ticket = "open_ticket"


class TargetType(StrEnum):
    hostname = "hostname"
    ip = "ip"
    user = "user"
    hash = "hash"  # sha256, sha1 or md5, hex
    domain = "domain"
    case = "case"  # open_ticket: the case itself


TARGETS: dict[ActionId, TargetType] = {
    ActionId.isolate_host: TargetType.hostname,
    ActionId.release_host: TargetType.hostname,
    ActionId.disable_user: TargetType.user,
    ActionId.reset_credentials: TargetType.user,
    ActionId.block_ip: TargetType.ip,
    ActionId.block_domain: TargetType.domain,
    ActionId.block_hash: TargetType.hash,
    ActionId.open_ticket: TargetType.case,
}

LABELS: dict[ActionId, str] = {
    ActionId.isolate_host: "Isolate host",
    ActionId.release_host: "Release host from isolation",
    ActionId.disable_user: "Disable user account",
    ActionId.reset_credentials: "Reset user credentials",
    ActionId.block_ip: "Block IP address",
    ActionId.block_domain: "Block domain",
    ActionId.block_hash: "Block file hash",
    ActionId.open_ticket: "Open a ticket",
}

# Observable kinds (socflow.observables) that can be each target type's value.
OBSERVABLE_KINDS: dict[TargetType, tuple[str, ...]] = {
    TargetType.hostname: ("host",),
    TargetType.ip: ("ip",),
    TargetType.user: ("user",),
    TargetType.hash: ("hash",),
    TargetType.domain: ("domain",),
    TargetType.case: (),
}

# Every pattern starts with an alphanumeric character: no value can look like an option ("--help").
_PATTERNS: dict[TargetType, re.Pattern[str]] = {
    TargetType.hostname: re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63}){0,10}$"),
    TargetType.ip: re.compile(
        r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
        r"|^[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}$"
    ),
    TargetType.user: re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@\\-]{0,127}$"),
    TargetType.hash: re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"),
    TargetType.domain: re.compile(
        r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})+$"
    ),
    TargetType.case: re.compile(r"^case-[0-9]{1,18}$"),
}


class TargetRefused(InputError):
    code = "action_target_refused"


def validate_target(kind: TargetType, value: str) -> str:
    """``value`` if it is a well-formed ``kind``; ``TargetRefused`` otherwise (shell metacharacters,
    option-like values, whitespace, over-long values never match)."""
    if not isinstance(value, str) or not _PATTERNS[kind].fullmatch(value):
        shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
        raise TargetRefused(f"{shown} is not a valid {kind.value}", field="target")
    if kind is TargetType.ip and value.count("::") > 1:
        raise TargetRefused(f"{value!r} is not a valid ip", field="target")
    return value


# -- the deployment's file ----------------------------------------------------------------------------
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class WebhookConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"]
    url: str = Field(min_length=1, max_length=2000)
    secret_env: EnvName  # the HMAC secret is read from this environment variable, never from the file
    timeout: float = Field(default=15.0, gt=0, le=300)


class CommandConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["command"]
    argv: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(min_length=1, max_length=20)
    timeout: float = Field(default=60.0, gt=0, le=3600)


class DefenderConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["defender"]
    base_url: str = Field(default="https://api.securitycenter.microsoft.com", min_length=1, max_length=2000)
    token_env: EnvName  # an Azure AD bearer token with Machine.Isolate, read from this variable
    isolation_type: Literal["Full", "Selective"] = "Full"
    timeout: float = Field(default=30.0, gt=0, le=300)


ConnectorConfig = Annotated[
    WebhookConnectorConfig | CommandConnectorConfig | DefenderConnectorConfig, Field(discriminator="type")
]


class WithoutApproval(BaseModel):
    """When an action may run without an analyst's approval: only on the policy's trusted facts
    (``socflow.policy.case_facts``): every alert of the case from ``source`` AND sent by a sender bound
    to it, every rule id on ``rules``, no injection flag, a ``true_positive`` verdict at ``min_confidence``
    or more (the scorer's, never a number the model wrote)."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=200)
    rules: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=500)
    min_confidence: float = Field(default=0.9, ge=0.0, le=1.0)


class ActionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: Name
    without_approval: WithoutApproval | None = None


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connectors: dict[Name, ConnectorConfig] = Field(default_factory=dict)
    actions: dict[ActionId, ActionConfig] = Field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """The enabled actions of this deployment and the connector that executes each."""

    actions: dict[ActionId, str] = field(default_factory=dict)  # action -> connector name
    connectors: dict[str, Any] = field(default_factory=dict)  # name -> connector config
    unattended: dict[ActionId, WithoutApproval] = field(default_factory=dict)  # ``without_approval`` rules
    source: str = ""

    @classmethod
    def empty(cls) -> Catalog:
        return cls()

    @classmethod
    def load(cls, path: Path | None) -> Catalog:
        """The catalog in ``path`` (no file: nothing enabled)."""
        if path is None:
            return cls.empty()
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            parsed = CatalogFile.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"actions file {path}: {exc}") from exc
        for action, conf in parsed.actions.items():
            if conf.connector not in parsed.connectors:
                raise ConfigError(
                    f"actions file {path}: {action.value} names unknown connector {conf.connector}"
                )
            connector = parsed.connectors[conf.connector]
            if isinstance(connector, DefenderConnectorConfig) and action not in DEFENDER_ACTIONS:
                raise ConfigError(
                    f"actions file {path}: the defender connector runs only "
                    f"{', '.join(sorted(a.value for a in DEFENDER_ACTIONS))}, not {action.value}"
                )
        return cls(
            actions={a: c.connector for a, c in parsed.actions.items()},
            connectors=dict(parsed.connectors),
            unattended={a: c.without_approval for a, c in parsed.actions.items() if c.without_approval},
            source=str(path),
        )

    def enabled(self) -> list[ActionId]:
        return [a for a in ActionId if a in self.actions]

    def is_enabled(self, action: str) -> bool:
        return action in ActionId.__members__ and ActionId(action) in self.actions

    def connector_for(self, action: ActionId) -> tuple[str, Any]:
        name = self.actions[action]
        return name, self.connectors[name]


def unattended_refusal(rule: WithoutApproval, facts: CaseFacts) -> str | None:
    """Why the action may not run without approval on this case (``None``: it may)."""
    if facts.injection or any(a.injection for a in facts.alerts):
        return "an alert of the case is flagged as a prompt-injection attempt"
    if not facts.alerts:
        return "no alert facts"
    if facts.verdict is not Verdict.true_positive:
        return f"verdict {facts.verdict} is not true_positive"
    if facts.confidence < rule.min_confidence:
        return f"confidence {facts.confidence:.2f} < {rule.min_confidence}"
    for a in facts.alerts:
        if a.source != rule.source:
            return f"an alert comes from source {a.source!r}, not {rule.source!r}"
        if not a.sender_bound:
            return f"an alert was not sent by a sender bound to source {rule.source!r}"
        if a.rule_id is None or a.rule_id not in rule.rules:
            return f"rule {a.rule_id!r} is not on the allow-list"
    return None


def unattended_actions(catalog: Catalog, facts: CaseFacts) -> dict[str, str]:
    """The enabled actions that may run without approval on this case -> why (the facts that hold)."""
    out: dict[str, str] = {}
    for action, rule in catalog.unattended.items():
        if action in catalog.actions and unattended_refusal(rule, facts) is None:
            out[action.value] = (
                f"policy: {facts.verdict} at confidence {facts.confidence:.2f} >= {rule.min_confidence}, "
                f"every alert from {rule.source} by a bound sender, rules allow-listed, no injection flag"
            )
    return out


DEFENDER_ACTIONS = frozenset({ActionId.isolate_host, ActionId.release_host})
