"""Structured logs for every socflow process: ``serve``, workers, the sweeper and the connectors.

``configure_logging(settings)`` installs one stderr handler on the root logger with the level and format
of ``SOCFLOW_LOG__LEVEL`` / ``SOCFLOW_LOG__FORMAT``: ``text`` for people, ``json`` for machines (one
object per line: ``ts``, ``level``, ``logger``, ``message``, then ``request_id``, ``run_id``, ``case_id``
and ``user`` when known, extra fields, and ``exc`` for a traceback).

The context fields come from context variables bound with ``log_context(run_id=..., case_id=...)``;
``RequestLogMiddleware`` binds a request id to every HTTP request (the client's ``X-Request-ID`` when it
is a short token, else a new one), answers it in the ``X-Request-ID`` header and logs one ``request``
line per request (method, path, status, duration, user).

Every record passes through ``RedactFilter`` before it is written: the values of the settings' secrets
(every ``SecretStr`` field, and the password of every URL setting) and any ``scheme://user:password@``
password are replaced by ``***``, in the message, its arguments, extra fields and tracebacks.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socflow.settings import Settings

__all__ = [
    "JsonFormatter",
    "RedactFilter",
    "RequestLogMiddleware",
    "configure_logging",
    "log_context",
    "secret_values",
]

CONTEXT_FIELDS = ("request_id", "run_id", "case_id", "user")
_CONTEXT: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"socflow_log_{name}", default=None) for name in CONTEXT_FIELDS
}
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^@/\s]+)(?P<at>@)")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MASK = "***"
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
_HANDLER_NAME = "socflow"
logger = logging.getLogger("socflow.http")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``request_id``, ``run_id``, ``case_id`` or ``user`` to every record logged inside."""
    tokens = [(_CONTEXT[k], _CONTEXT[k].set(v)) for k, v in fields.items() if k in _CONTEXT]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_context() -> dict[str, Any]:
    return {k: v.get() for k, v in _CONTEXT.items() if v.get() is not None}


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret in ``settings``: ``SecretStr`` values and the passwords of URL-valued fields."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, str) and "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.append(password)

    walk(settings)
    # a short value would mask ordinary words; secrets are never that short
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


class RedactFilter(logging.Filter):
    """Masks secrets (and any URL password) in a record before any handler formats it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("at"), text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what was logged, as text
            message = f"{record.msg} {record.args}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(current_context())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exc"] = record.exc_text
        elif record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = current_context()
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


def configure_logging(
    settings: Settings, *, stream: Any = None, extra_secrets: Iterable[str | None] = ()
) -> logging.Handler:
    """Install (or replace) socflow's handler on the root logger; idempotent. ``extra_secrets``: values
    that are not settings but must never be logged either (a connector's --password, ...)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if settings.log.format == "json" else TextFormatter())
    handler.addFilter(RedactFilter([*secret_values(settings), *(s for s in extra_secrets if s)]))
    root.addHandler(handler)
    root.setLevel(settings.log.level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker"):
        named = logging.getLogger(name)
        named.handlers.clear()  # through the root handler: one format, one redaction
        named.propagate = True
    return handler


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class RequestLogMiddleware:
    """A request id for every HTTP request (bound to the log context, answered in ``X-Request-ID``) and
    one ``request`` log line when the response has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                state = scope.get("state") or {}
                who = state.get("session_principal") or state.get("principal")
                logger.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                        "user": getattr(who, "name", None),
                    },
                )


def is_configured() -> bool:
    return any(h.get_name() == _HANDLER_NAME for h in logging.getLogger().handlers)


def install_request_logging(app: Any, settings: Settings) -> None:
    """The request-id middleware added, and logging configured from ``settings`` unless this process
    did it already (``socflow serve`` does it first; a uvicorn worker process does it here)."""
    if not is_configured():
        configure_logging(settings)
    app.add_middleware(RequestLogMiddleware)
