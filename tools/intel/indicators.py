"""Indicator types, value normalization and the bounds every feed loader applies.

Feed files are untrusted input: a value is kept only when it is a well-formed IP address, domain name,
URL, e-mail address or MD5/SHA-1/SHA-256/SHA-512 hash, normalized the way ``socflow.observables`` stores
a case's observables (IPs in canonical form, domains, e-mails and hashes lower-case), so a match is a
plain equality on (type, value). Text fields are cut to fixed lengths.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator, model_validator

from socflow.enums import ObservableType


class IndicatorType(StrEnum):
    """The observable types an indicator can have (the matching ``ObservableType`` values)."""

    ip = ObservableType.ip.value
    domain = ObservableType.domain.value
    url = ObservableType.url.value
    hash = ObservableType.hash.value
    email = ObservableType.email.value


MAX_VALUE_CHARS = 512  # the column's size; a longer URL is refused, not cut
MAX_DESCRIPTION_CHARS = 500
MAX_SOURCE_CHARS = 100
MAX_TAGS = 20
MAX_TAG_CHARS = 100
MAX_EXTERNAL_ID_CHARS = 200

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$")
_EMAIL = re.compile(r"^[a-z0-9._%+-]{1,64}@(?:[a-z0-9-]{1,63}\.)+[a-z]{2,24}$")
_URL = re.compile(r"^(?:https?|ftp)://[^\s<>\"'`]+$", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def normalize(kind: IndicatorType | str, value: str) -> str:
    """``value`` normalized for ``kind``; ``ValueError`` when it is not a well-formed value of that type."""
    kind = IndicatorType(kind)
    v = value.strip()
    if not v or len(v) > MAX_VALUE_CHARS:
        raise ValueError(f"a {kind} value must be 1-{MAX_VALUE_CHARS} characters")
    if kind is IndicatorType.ip:
        return str(ipaddress.ip_address(v))
    if kind is IndicatorType.hash:
        if not _HASH.fullmatch(v.lower()):
            raise ValueError("not an MD5, SHA-1, SHA-256 or SHA-512 hex digest")
        return v.lower()
    if kind is IndicatorType.domain:
        d = v.lower().rstrip(".")
        if not _DOMAIN.fullmatch(d):
            raise ValueError("not a domain name")
        return d
    if kind is IndicatorType.email:
        e = v.lower()
        if not _EMAIL.fullmatch(e):
            raise ValueError("not an e-mail address")
        return e
    if not _URL.fullmatch(v):
        raise ValueError("not an http(s) or ftp URL")
    return v


def guess_type(value: str) -> IndicatorType | None:
    """The type of a bare value (``socflow intel match``): IP, hash, URL, e-mail, then domain."""
    v = value.strip()
    for kind in (IndicatorType.ip, IndicatorType.hash, IndicatorType.url, IndicatorType.email):
        try:
            normalize(kind, v)
        except ValueError:
            continue
        return kind
    try:
        normalize(IndicatorType.domain, v)
    except ValueError:
        return None
    return IndicatorType.domain


def clean(text: object, limit: int) -> str:
    """Untrusted feed text, control characters removed and cut to ``limit`` characters."""
    return _CONTROL.sub(" ", str(text)).strip()[:limit]


class IndicatorIn(BaseModel):
    """One indicator read from a feed, validated and normalized (``ValueError`` when it is not usable)."""

    type: IndicatorType
    value: str
    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS)
    confidence: int | None = Field(default=None, ge=0, le=100)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    external_id: str | None = None
    valid_until: datetime | None = None

    @model_validator(mode="after")
    def _normalized(self) -> IndicatorIn:
        self.value = normalize(self.type, self.value)
        return self

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> str | None:
        return clean(value, MAX_DESCRIPTION_CHARS) or None if value is not None else None

    @field_validator("external_id", mode="before")
    @classmethod
    def _external_id(cls, value: object) -> str | None:
        return clean(value, MAX_EXTERNAL_ID_CHARS) or None if value is not None else None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> list[str]:
        if not isinstance(value, list | tuple):
            return []
        tags = [clean(t, MAX_TAG_CHARS) for t in value[:MAX_TAGS] if isinstance(t, str)]
        return [t for t in tags if t]

    @field_validator("valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
