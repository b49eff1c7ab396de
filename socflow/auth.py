"""Bearer tokens with a name and a role. Only a token's sha256 is stored; it is shown once.

Roles: ``ingest`` (POST alerts), ``analyst`` (read, decide, assign), ``engineer`` (workflows, read),
``admin`` (everything, tokens). The API acts as the token's name in audit events.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from socflow.schemas import now_utc
from socflow.tables import ApiToken

TOKEN_PREFIX = "sf_"


class Role(StrEnum):
    ingest = "ingest"
    analyst = "analyst"
    engineer = "engineer"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who calls. ``sources``: the alert sources the token may send (``None``: any, the default of
    tokens made before revision 0010); ``ingest_format``: the alert format forced for what it sends."""

    name: str
    role: Role
    token_id: int | None = None
    sources: frozenset[str] | None = None
    ingest_format: str | None = None
    user_id: int | None = None  # a person's web session (a user account, revision 0020), not a token

    def has(self, *roles: Role) -> bool:
        return self.role is Role.admin or self.role in roles


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def authenticate(session: Session, raw: str, *, now: datetime | None = None) -> Principal | None:
    """The principal of a valid, unexpired, unrevoked token; None otherwise."""
    if not raw or len(raw) > 200:
        return None
    digest = hash_token(raw)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = now or now_utc()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return principal_of(row)


def principal_of(row: ApiToken) -> Principal:
    return Principal(
        name=row.name,
        role=Role(row.role),
        token_id=row.id,
        sources=frozenset(row.sources) if row.sources is not None else None,
        ingest_format=row.ingest_format,
    )


def token_is_valid(session: Session, raw: str, *, now: datetime | None = None) -> bool:
    """Whether ``raw`` is a valid token, without recording its use (checked before a body is read)."""
    if not raw or len(raw) > 200:
        return False
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    now = now or now_utc()
    return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
