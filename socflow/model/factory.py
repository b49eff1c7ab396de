"""Build the configured ``ModelClient`` from settings (the only place that reads ``ModelSettings``)."""

from __future__ import annotations

from typing import Any

from socflow.errors import ConfigError, ModelUnavailable
from socflow.model.base import ModelClient
from socflow.model.driver import DrivenModel
from socflow.model.recorder import ModelCallRecorder
from socflow.settings import ModelSettings


def _secret(value: Any) -> str | None:
    """A plain string from a ``SecretStr``, a string or ``None`` (empty means none)."""
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value) if value else None


def build_model_client(
    settings: ModelSettings, recorder: ModelCallRecorder | None, *, batching: bool | None = None
) -> ModelClient:
    """The client for ``settings.backend``. Nothing heavy loads here: the transformers model loads lazily.

    ``batching`` overrides ``settings.batching`` (a model-holding worker with a thread pool turns it on).
    """
    client = _build(settings, recorder, batching=batching)
    if settings.context_tokens and isinstance(client, DrivenModel):
        client.context_tokens = settings.context_tokens
    return client


def _build(
    settings: ModelSettings, recorder: ModelCallRecorder | None, *, batching: bool | None
) -> ModelClient:
    if settings.backend == "transformers":
        from socflow.model.hf import TransformersModel

        return TransformersModel(
            settings.name,
            cache_dir=settings.cache_dir,
            device=settings.device,
            max_new_tokens=settings.max_new_tokens,
            load_in_4bit=settings.load_in_4bit,
            recorder=recorder,
            batching=settings.batching if batching is None else batching,
            batch_max_size=settings.batch_max_size,
            batch_wait_ms=settings.batch_wait_ms,
        )
    if settings.backend == "scripted":
        from socflow.model.scripted import ScriptedModel

        # An empty script: every call fails loudly. Tests build their own ScriptedModel with rules.
        return ScriptedModel([], recorder=recorder)
    if settings.backend == "endpoint":
        from socflow.model.endpoint import EndpointModel

        return EndpointModel(
            settings.endpoint_url,
            settings.name,
            timeout_seconds=settings.timeout_seconds,
            max_new_tokens=settings.max_new_tokens,
            max_retries=settings.max_retries,
            api_key=_secret(settings.endpoint_api_key),
            recorder=recorder,
        )
    if settings.backend == "none":
        raise ModelUnavailable("no model backend configured (SOCFLOW_MODEL__BACKEND=none)")
    raise ConfigError(f"unknown model backend {settings.backend!r}")
