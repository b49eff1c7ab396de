"""The SIEM backend interface and the factory that builds one from settings."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import httpx
from sigma.rule import SigmaRule

from socflow.errors import ConfigError
from socflow.settings import SiemSettings
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import BackendKind, EntityQuery, SiemEvent
from tools.siem.remote import ElasticSiem, SplunkSiem


@runtime_checkable
class SiemBackend(Protocol):
    """What the triage workflow uses: entity + time-window search and Sigma hunting."""

    kind: BackendKind

    def search(self, query: EntityQuery) -> list[SiemEvent]: ...

    def hunt(self, rule: SigmaRule | str, *, limit: int = 100) -> list[SiemEvent]: ...

    def close(self) -> None: ...


def build_siem(settings: SiemSettings, *, transport: httpx.BaseTransport | None = None) -> SiemBackend:
    """The backend the settings name (``embedded`` by default, on ``settings.path``)."""
    if settings.backend == BackendKind.EMBEDDED:
        return EmbeddedSiem(settings.path)
    common = {
        "index": settings.index,
        "username": settings.username,
        "password": settings.password.get_secret_value(),
        "transport": transport,
    }
    if settings.backend == BackendKind.ELASTIC:
        return ElasticSiem(settings.url, **common)  # type: ignore[arg-type]
    if settings.backend == BackendKind.SPLUNK:
        return SplunkSiem(settings.url, **common)  # type: ignore[arg-type]
    raise ConfigError(f"unknown SIEM backend {settings.backend!r}")
