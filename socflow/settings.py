"""Settings: one pydantic-settings class, nested groups, ``SOCFLOW_<GROUP>__<FIELD>`` environment names.

Read once through ``get_settings()`` (cached) and passed explicitly into factories; nodes never read settings.

Secrets never print: keys, passwords and tokens are ``SecretStr`` (``**********`` in any repr); the database
and broker URLs stay plain strings (every engine needs them) but their password is masked in reprs; and a
settings error (``ConfigError``) names the fields and reasons only, never the values that came in.

``.env`` may hold other programs' variables (docker compose's ``POSTGRES_PASSWORD``, image names): only its
``SOCFLOW_*`` names are read, and an unknown ``SOCFLOW_*`` name is still refused.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from socflow.enums import Severity
from socflow.errors import ConfigError

DEFAULT_SECRET = "dev-insecure-change-me"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and reprs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


class DatabaseSettings(_Group):
    url: str = Field(default="sqlite:///./socflow.db", repr=False)
    echo: bool = False

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        yield "url", mask_url(self.url)
        yield from super().__repr_args__()


class BrokerSettings(_Group):
    url: str = Field(default="", repr=False)

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        yield "url", mask_url(self.url)
        yield from super().__repr_args__()


class ModelSettings(_Group):
    backend: Literal["transformers", "endpoint", "scripted", "none"] = "transformers"
    name: str = "smollm2"
    endpoint_url: str = ""
    cache_dir: Path = Path("~/.cache/socflow/models").expanduser()
    max_new_tokens: int = Field(default=256, ge=1, le=8192)
    # prompt + answer tokens the model takes; 0: the backend's own (the transformers config, the
    # endpoint's /v1/models max_model_len). Prompt builders trim evidence to fit it.
    context_tokens: int = Field(default=0, ge=0, le=10_000_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    load_in_4bit: bool = False
    timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    endpoint_api_key: SecretStr = SecretStr("")
    batching: bool = False
    batch_max_size: int = Field(default=8, ge=1, le=64)
    batch_wait_ms: float = Field(default=20.0, ge=0, le=1000)
    # a confidence calibration written by `socflow eval triage --fit-calibration FILE` (docs/evaluation.md)
    calibration: Path | None = None


class SiemSettings(_Group):
    backend: Literal["embedded", "opensearch", "elastic", "splunk"] = "embedded"
    path: Path = Path("./socflow-siem.db")
    url: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    index: str = "logs-*"
    # -- prod-a --
    api_key: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    verify: bool = True
    ca_bundle: str = ""
    timeout: float = Field(default=30.0, gt=0)


class GroupingSettings(_Group):
    window_seconds: int = Field(default=3600, ge=1)
    key_fields: list[str] = Field(default_factory=lambda: ["rule", "hosts", "users"])
    # storm economy (issue 18): a joining alert that brings no new host, user or technique and no higher
    # severity leaves a waiting draft fresh, until more than this many joined since its assessment (0: every
    # joining alert makes the draft stale and queues a re-assessment, the behaviour before issue 18)
    reassess_after_alerts: int = Field(default=500, ge=0)


class PolicySettings(_Group):
    file: Path | None = None


class ActionSettings(_Group):
    """Response actions (docs/actions.md): the deployment's catalog file; none: no action is enabled."""

    file: Path | None = None


class ApiSettings(_Group):
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class WorkerSettings(_Group):
    run_lease_seconds: int = Field(default=600, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    model_queue: str = "gpu"
    concurrency: int = Field(default=1, ge=1)
    # -- core-b --
    sweep_interval_seconds: float = Field(default=30.0, ge=0.5)  # periodic sweeper (beat or in-process)
    sweep_grace_seconds: float = Field(default=60.0, ge=0.0)  # a queued run older than this is taken again
    outbox_interval_seconds: float = Field(default=10.0, ge=0.5)  # write-back deliveries (beat or in-process)
    # -- prod-b: a node failing with a transient error is retried this often, backoff doubling --
    node_retries: int = Field(default=3, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=2.0, ge=0, le=600)


class WorkflowSettings(_Group):
    paths: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """A JSON list, or paths separated by the OS path separator (``:`` on Linux)."""
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [p for p in value.split(os.pathsep) if p]
        return value


class IngestSettings(_Group):
    max_field_bytes: int = 64 * 1024
    max_raw_bytes: int = 256 * 1024
    max_batch_items: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    format: str = "auto"
    field_map: dict[str, str] = Field(default_factory=dict)


class ConnectorSettings(_Group):
    """Pull connectors (``socflow connector run``); every field is also a CLI option."""

    url: str = ""
    index: str = ".alerts-security.alerts-default"
    username: str = ""
    password: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    since: str = ""
    size: int = Field(default=500, ge=1, le=10_000)
    timeout: float = Field(default=30.0, gt=0)
    verify: bool = True
    interval: float = Field(default=60.0, gt=0)
    path: Path | None = None
    format: str = "auto"
    field_map: dict[str, str] = Field(default_factory=dict)
    source: str = ""
    settle: float = Field(default=2.0, ge=0)
    # -- prod-a --
    ca_bundle: str = ""
    lookback: float = Field(default=300.0, ge=0)


# -- prod-a --
class WritebackSettings(_Group):
    """Write-back of decisions to the alert's own system (``socflow.outbox``). A target with no URL is
    skipped (its outbox rows say so). Credentials apply to the Elastic, OpenSearch, Kibana and Splunk targets.
    """

    elastic_url: str = ""
    kibana_url: str = ""
    splunk_url: str = ""
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    verify: bool = True
    ca_bundle: str = ""
    timeout: float = Field(default=15.0, gt=0)
    case_url: str = "http://127.0.0.1:8000/cases/{case_id}"
    max_attempts: int = Field(default=12, ge=1, le=100)
    backoff_seconds: float = Field(default=15.0, ge=0)
    backoff_max_seconds: float = Field(default=3600.0, ge=0)


# -- console --
class LogSettings(_Group):
    """``SOCFLOW_LOG__LEVEL`` and ``SOCFLOW_LOG__FORMAT`` (``text`` or ``json``: one object per line)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class _SocflowDotEnv(PydanticBaseSettingsSource):
    """``.env`` restricted to ``SOCFLOW_*`` names (the file is shared with docker compose): other names
    are dropped, unknown ``SOCFLOW_*`` names stay and are refused as extra inputs."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {k: v for k, v in self.dotenv().items() if k in fields or k.lower().startswith("socflow_")}


# -- notify --
NOTIFY_EVENTS = ("escalated", "assigned", "critical_case", "sla_breach")
NOTIFY_CHANNELS = ("slack", "email", "webhook")


class NotifySettings(_Group):
    """Notifications (``socflow.notify``): which event kinds go to which channels, the channels, the SLAs.

    Off by default: nothing is sent until ``routes`` (here, as JSON in ``SOCFLOW_NOTIFY__ROUTES``, or the
    ``routes:`` of the YAML ``file``) names a channel for an event kind. SLAs are seconds per case severity
    (a severity left out has no SLA); the YAML file's ``sla:`` section overrides them.
    """

    routes: dict[str, list[str]] = Field(default_factory=dict)  # event kind -> channels
    file: Path | None = None
    # slack: an incoming-webhook URL (it holds Slack's token, hence secret)
    slack_webhook_url: SecretStr = SecretStr("")
    # email over SMTP
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = ""
    smtp_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    smtp_starttls: bool = False
    smtp_user: SecretStr = SecretStr("")
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout: float = Field(default=15.0, gt=0)
    # a generic webhook, signed with HMAC-SHA256 over "<timestamp>.<body>"
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    webhook_timeout: float = Field(default=15.0, gt=0)
    # service levels, in seconds per severity
    sla_acknowledge_seconds: dict[str, float] = Field(
        default_factory=lambda: {"critical": 900.0, "high": 3600.0, "medium": 14_400.0, "low": 86_400.0}
    )
    sla_decide_seconds: dict[str, float] = Field(
        default_factory=lambda: {"critical": 3600.0, "high": 14_400.0, "medium": 86_400.0, "low": 259_200.0}
    )
    interval_seconds: float = Field(default=30.0, ge=0.5)  # the ``notify`` periodic job
    lookback_seconds: float = Field(default=86_400.0, gt=0)  # how far back a pass looks (first run, SLAs)
    settle_seconds: float = Field(default=30.0, ge=0)  # audit events younger than this are read again

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _split_to(cls, value: object) -> object:
        """A JSON list, or addresses separated by commas."""
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [p.strip() for p in value.split(",") if p]
        return value

    @field_validator("routes")
    @classmethod
    def _known_routes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        check_routes(value)
        return value

    @field_validator("sla_acknowledge_seconds", "sla_decide_seconds")
    @classmethod
    def _known_severities(cls, value: dict[str, float]) -> dict[str, float]:
        check_sla(value)
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.routes) or self.file is not None


def check_routes(routes: dict[str, list[str]]) -> None:
    """ValueError naming an unknown event kind or channel."""
    for kind, channels in routes.items():
        if kind not in NOTIFY_EVENTS:
            raise ValueError(f"unknown notification event {kind!r} (known: {', '.join(NOTIFY_EVENTS)})")
        for channel in channels:
            if channel not in NOTIFY_CHANNELS:
                raise ValueError(f"unknown channel {channel!r} (known: {', '.join(NOTIFY_CHANNELS)})")


def check_sla(sla: dict[str, float]) -> None:
    """ValueError naming an unknown severity or a non-positive time."""
    severities = [s.value for s in Severity]
    for severity, seconds in sla.items():
        if severity not in severities:
            raise ValueError(f"unknown severity {severity!r} (known: {', '.join(severities)})")
        if not seconds > 0:
            raise ValueError(f"the SLA for {severity} must be a positive number of seconds")


# -- users --
RoleName = Literal["ingest", "analyst", "engineer", "admin"]


class OidcSettings(_Group):
    """OpenID Connect single sign-on for the web UI (``SOCFLOW_OIDC__*``; off by default, docs/ui.md).

    ``role_map``: claim value -> socflow role, as JSON (``{"soc-analysts": "analyst"}``); the person's
    ``role_claim`` (a string or a list of strings in the ID token or userinfo) is read, and the first
    entry of the mapping, in its order, that the claim carries gives the role. No entry: refused.
    """

    enabled: bool = False
    issuer: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    redirect_url: str = ""  # this site's /login/oidc/callback as the provider knows it
    scopes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["openid", "profile", "email"])
    role_claim: str = "groups"
    role_map: dict[str, RoleName] = Field(default_factory=dict)
    username_claim: str = "preferred_username"  # falls back to email, then sub
    label: str = "Sign in with single sign-on"
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """A JSON list, or scopes separated by commas or spaces."""
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else value.replace(",", " ").split()
        return value

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if not self.enabled:
            return self
        missing = [n for n in ("issuer", "client_id", "redirect_url") if not getattr(self, n)]
        if missing:
            raise ValueError(f"SSO is enabled but {', '.join(missing)} is not set")
        if not self.role_map:
            raise ValueError("SSO is enabled but role_map is empty: nobody could sign in")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        for name in ("issuer", "redirect_url"):
            url = getattr(self, name)
            local = url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
            if not (url.startswith("https://") or local):
                raise ValueError(f"{name} must be an https URL (plain http only on localhost)")
        return self


# -- detect --
class DetectionSettings(_Group):
    """The Sigma rule pack and streaming detection (``socflow siem rules``, ``siem load --detect``)."""

    pack_dir: Path = Path("./.socflow/sigma-pack")
    rule_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    statuses: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["stable", "test"])
    min_level: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    hunting: bool = False
    suppressions: Path | None = None
    cache_path: Path = Path("./.socflow/sigma-cache.json.gz")
    batch_size: int = Field(default=50_000, ge=100, le=1_000_000)
    interval_seconds: float = Field(default=10.0, gt=0)
    schedule: bool = False  # run streaming detection as a periodic job (beat or in-process scheduler)

    @field_validator("rule_dirs", "statuses", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """A JSON list, or items separated by commas."""
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [p for p in value.split(",") if p]
        return value


class IntelSettings(_Group):
    """Threat-intel enrichment (docs/intel.md): the local indicator store is matched when ``enabled``; the
    MISP provider is off until ``misp_url`` and ``misp_api_key`` are both set."""

    enabled: bool = True
    misp_url: str = ""
    misp_api_key: SecretStr = SecretStr("")
    misp_verify: bool = True
    misp_ca_bundle: str = ""
    misp_timeout: float = Field(default=10.0, gt=0, le=120)
    misp_cache_ttl_seconds: float = Field(default=3600.0, ge=0)
    misp_max_requests_per_minute: int = Field(default=60, ge=1, le=10_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOCFLOW_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./.socflow")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    siem: SiemSettings = Field(default_factory=SiemSettings)
    grouping: GroupingSettings = Field(default_factory=GroupingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    actions: ActionSettings = Field(default_factory=ActionSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    connector: ConnectorSettings = Field(default_factory=ConnectorSettings)
    # -- prod-a --
    writeback: WritebackSettings = Field(default_factory=WritebackSettings)
    # -- console --
    log: LogSettings = Field(default_factory=LogSettings)

    # -- users --
    oidc: OidcSettings = Field(default_factory=OidcSettings)

    # -- detect --
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    # -- notify --
    notify: NotifySettings = Field(default_factory=NotifySettings)
    intel: IntelSettings = Field(default_factory=IntelSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        dotenv = _SocflowDotEnv(settings_cls, dotenv_settings)
        return init_settings, env_settings, dotenv, file_secret_settings

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "production" and self.api.secret_key.get_secret_value() in ("", DEFAULT_SECRET):
            raise ValueError("SOCFLOW_API__SECRET_KEY must be set to a non-default value in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment and ``.env``), read once."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None  # the chained error would print the values
    except ValueError as exc:
        raise ConfigError(f"settings: {type(exc).__name__}") from None


def describe(exc: ValidationError) -> str:
    """A settings error as field names and reasons, without the input values (they may be secrets)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = "SOCFLOW_" + "__".join(str(p).upper() for p in err["loc"]) if err["loc"] else "settings"
        lines.append(f"{where}: {err['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)
