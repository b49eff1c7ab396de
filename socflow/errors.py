"""The socflow exception family.

Branch on types (and ``code``), never on message text; never copy exception text into business fields.

    SocflowError
    ├── ConfigError                 settings that cannot work (default secret in production, ...)
    ├── InputError                  untrusted input refused (carries ``field`` and ``reason``)
    │   └── AlertValidationError     one alert failed validation
    ├── NotFoundError               a row that should exist does not
    ├── ConflictError               a state change that is not allowed now
    │   └── InvalidTransition        a case status move outside the allowed graph
    ├── ModelError                  the model runtime failed
    │   ├── ModelUnavailable          backend missing (extra not installed, file absent)
    │   ├── UnboundedSchemaError      a structured-output schema that constrained decoding cannot bound
    │   ├── StructuredOutputError     output still invalid after the repair attempt
    │   └── UnscriptedCallError       the scripted double got a call nobody scripted
    ├── AttackError                 ATT&CK catalog problems
    │   └── UnknownTechniqueError     an id the catalog does not know
    ├── SiemError                   SIEM backend problems
    │   └── SigmaConversionError      a Sigma rule that cannot be converted
    └── ConnectorError              a pull connector failed (socflow.connectors.base)
        └── ConnectorHTTPError        the remote answered an HTTP error (carries status_code)
"""

from __future__ import annotations


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
