"""Settings: one pydantic-settings class, nested groups, ``SOCFLOW_<GROUP>__<FIELD>`` environment names.

Read once through ``get_settings()`` (cached) and passed explicitly into factories; nodes never read settings.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from socflow.errors import ConfigError

DEFAULT_SECRET = "dev-insecure-change-me"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Group):
    url: str = "sqlite:///./socflow.db"
    echo: bool = False


class BrokerSettings(_Group):
    url: str = ""


class ModelSettings(_Group):
    backend: Literal["transformers", "endpoint", "scripted", "none"] = "transformers"
    name: str = "smollm2"
    endpoint_url: str = ""
    cache_dir: Path = Path("~/.cache/socflow/models").expanduser()
    max_new_tokens: int = Field(default=256, ge=1, le=8192)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    load_in_4bit: bool = False
    timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    endpoint_api_key: SecretStr = SecretStr("")
    batching: bool = False
    batch_max_size: int = Field(default=8, ge=1, le=64)
    batch_wait_ms: float = Field(default=20.0, ge=0, le=1000)


class SiemSettings(_Group):
    backend: Literal["embedded", "elastic", "splunk"] = "embedded"
    path: Path = Path("./socflow-siem.db")
    url: str = ""
    username: str = ""
    password: str = ""
    index: str = "logs-*"


class GroupingSettings(_Group):
    window_seconds: int = Field(default=3600, ge=1)
    key_fields: list[str] = Field(default_factory=lambda: ["rule", "hosts", "users"])


class PolicySettings(_Group):
    file: Path | None = None


class ApiSettings(_Group):
    secret_key: str = DEFAULT_SECRET
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class WorkerSettings(_Group):
    run_lease_seconds: int = Field(default=600, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    model_queue: str = "gpu"
    concurrency: int = Field(default=1, ge=1)


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
    password: str = ""
    api_key: str = ""
    token: str = ""
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

    @field_validator("rule_dirs", "statuses", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """A JSON list, or items separated by commas."""
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [p for p in value.split(",") if p]
        return value


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
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    connector: ConnectorSettings = Field(default_factory=ConnectorSettings)
    # -- detect --
    detection: DetectionSettings = Field(default_factory=DetectionSettings)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "production" and self.api.secret_key in ("", DEFAULT_SECRET):
            raise ValueError("SOCFLOW_API__SECRET_KEY must be set to a non-default value in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment and ``.env``), read once."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigError(str(exc)) from exc
