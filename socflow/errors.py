"""The socflow exception family.

Branch on types (and ``code``), never on message text; never copy exception text into business fields.

    SocflowError
    ├── ConfigError                 settings that cannot work (default secret in production, ...)
    ├── InputError                  untrusted input refused (carries ``field`` and ``reason``)
    │   └── AlertValidationError     one alert failed validation
    ├── NotFoundError               a row that should exist does not
    ├── ConflictError               a state change that is not allowed now
    │   ├── InvalidTransition        a case status move outside the allowed graph
    │   └── NotRetryable             ``runs retry`` on a run that has not failed
    ├── TransientError              a failure that may pass by itself: the runner retries the node
    │                                (connection error, timeout, HTTP 429 or 5xx); also mixed into the
    │                                classes marked (transient) below
    ├── ModelError                  the model runtime failed
    │   ├── ModelUnavailable          backend missing (extra not installed, file absent)
    │   │   └── EndpointUnavailableError (transient; socflow.model.endpoint) the server is down or busy
    │   ├── UnboundedSchemaError      a structured-output schema that constrained decoding cannot bound
    │   ├── StructuredOutputError     output still invalid after the repair attempt
    │   └── UnscriptedCallError       the scripted double got a call nobody scripted
    ├── AttackError                 ATT&CK catalog problems
    │   └── UnknownTechniqueError     an id the catalog does not know
    ├── SiemError                   SIEM backend problems
    │   ├── SigmaConversionError      a Sigma rule that cannot be converted
    │   └── SiemUnavailableError      (transient) the SIEM is down, timed out, or answered 429/5xx
    └── ConnectorError              a pull connector failed (socflow.connectors.base)
        └── ConnectorHTTPError        the remote answered an HTTP error (carries status_code)

``is_transient(exc)`` is the runner's retry predicate: the first socflow error met along the ``__cause__``
chain decides (transient or not); foreign exceptions count when they are httpx timeouts, network or
remote-protocol errors, ``httpx.HTTPStatusError`` with 429 or 5xx, or the built-in ``ConnectionError`` or
``TimeoutError``.
Everything else (other 4xx, validation failures, a prompt over the context) fails the run at once.
"""

from __future__ import annotations

import httpx

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class SocflowError(Exception):
    """Base of every error socflow raises on purpose."""

    code: str = "socflow_error"


class ConfigError(SocflowError):
    code = "config_error"


class InputError(SocflowError):
    code = "invalid_input"

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class AlertValidationError(InputError):
    code = "invalid_alert"


class NotFoundError(SocflowError):
    code = "not_found"


class ConflictError(SocflowError):
    code = "conflict"


class InvalidTransition(ConflictError):
    code = "invalid_transition"


class NotRetryable(ConflictError):
    code = "not_retryable"


class TransientError(SocflowError):
    """A failure worth retrying with backoff: the same call may succeed in a moment."""

    code = "transient"


class ModelError(SocflowError):
    code = "model_error"


class ModelUnavailable(ModelError):
    code = "model_unavailable"


class UnboundedSchemaError(ModelError):
    code = "unbounded_schema"


class StructuredOutputError(ModelError):
    code = "structured_output_invalid"


class UnscriptedCallError(ModelError):
    code = "unscripted_call"


class AttackError(SocflowError):
    code = "attack_error"


class UnknownTechniqueError(AttackError):
    code = "unknown_technique"


class SiemError(SocflowError):
    code = "siem_error"


class SigmaConversionError(SiemError):
    code = "sigma_conversion_failed"


class SiemUnavailableError(SiemError, TransientError):
    code = "siem_unavailable"


_TRANSIENT_FOREIGN = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed graph node is worth running again (see the module docstring)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SocflowError):
            return isinstance(current, TransientError)
        if isinstance(current, httpx.HTTPStatusError):
            return current.response.status_code in RETRY_STATUS
        if isinstance(current, _TRANSIENT_FOREIGN):
            return True
        current = current.__cause__
    return False
