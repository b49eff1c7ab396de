"""The SIEM backend interface and the factory that builds one from settings."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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
    """The one SIEM factory: the backend ``SOCFLOW_SIEM__BACKEND`` names (``embedded`` by default, on
    ``settings.path``; ``opensearch`` and ``elastic`` over ``_search``; ``splunk`` over the export API)."""
    kind = BackendKind(settings.backend)
    if kind is BackendKind.EMBEDDED:
        return EmbeddedSiem(settings.path)
    common: dict[str, Any] = {
        "index": settings.index,
        "username": settings.username,
        "password": settings.password.get_secret_value(),
        "api_key": settings.api_key.get_secret_value(),
        "token": settings.token.get_secret_value(),
        "verify": settings.verify,
        "ca_bundle": settings.ca_bundle,
        "timeout": settings.timeout,
        "transport": transport,
    }
    if kind in (BackendKind.ELASTIC, BackendKind.OPENSEARCH):
        return ElasticSiem(settings.url, kind=kind, **common)
    if kind is BackendKind.SPLUNK:
        return SplunkSiem(settings.url, **common)
    raise ConfigError(f"unknown SIEM backend {settings.backend!r}")
