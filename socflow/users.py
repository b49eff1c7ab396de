"""User accounts for the web UI: local accounts with argon2 password hashes, and accounts made at an
OpenID Connect sign-in (see ``socflow.web.oidc``). API tokens (``socflow.auth``) stay for machines.

* Passwords are hashed with argon2id (argon2-cffi's defaults); a hash made with older parameters is
  re-hashed at the next successful login.
* ``check_password`` costs one argon2 verification whatever happens: an unknown or disabled user is
  verified against a dummy hash, so the answer time does not tell which usernames exist.
* A disabled user cannot sign in; ``socflow.web.security`` re-checks the account on every request, so
  disabling also ends the user's open sessions (they are marked ended here as well).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from socflow.auth import Principal, Role
from socflow.errors import ConflictError, InputError, NotFoundError
from socflow.schemas import now_utc
from socflow.tables import AuditEvent, User, WebSession

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a login request from costing more

_hasher = PasswordHasher()
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"a password may have at most {MAX_PASSWORD} characters")


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise InputError(
            "a username is 1-200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return username


def _dummy() -> str:
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash("socflow-dummy-password-for-unknown-users")
        return _dummy_hash


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False


def _audit(session: Session, action: str, row: User, actor: str, **data: object) -> None:
    """An audit event for an account change (``user.created``, ``user.disabled``, ...)."""
    session.add(
        AuditEvent(
            at=now_utc(),
            actor=actor,
            action=action,
            entity_type="user",
            entity_id=str(row.id),
            case_id=None,
            data={"username": row.username, **data},
        )
    )


def principal_of_user(row: User) -> Principal:
    return Principal(name=row.username, role=Role(row.role), user_id=row.id)


def check_password(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> Principal | None:
    """The principal of an enabled local user whose password matches; None otherwise (one argon2
    verification in every case: unknown, disabled and password-less accounts use a dummy hash)."""
    if not username or len(username) > 200 or len(password) > MAX_PASSWORD:
        _verify(None, "x")
        return None
    row = session.scalar(select(User).where(User.username == username))
    usable = row is not None and row.disabled_at is None and row.password_hash is not None
    ok = _verify(row.password_hash if usable and row is not None else None, password)
    if not (ok and usable and row is not None):
        return None
    assert row.password_hash is not None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    row.last_login_at = now or now_utc()
    return principal_of_user(row)


def create_user(
    session: Session, username: str, role: Role, password: str | None, *, actor: str = "cli"
) -> User:
    check_username(username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"a user named {username!r} exists already")
    row = User(
        username=username,
        role=role.value,
        password_hash=hash_password(password) if password is not None else None,
        created_at=now_utc(),
    )
    session.add(row)
    session.flush()
    _audit(session, "user.created", row, actor, role=role.value)
    return row


def get_user(session: Session, username: str) -> User:
    row = session.scalar(select(User).where(User.username == username))
    if row is None:
        raise NotFoundError(f"no user named {username!r}")
    return row


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def end_user_sessions(session: Session, user_id: int) -> int:
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now_utc())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def disable_user(session: Session, username: str, *, actor: str = "cli") -> User:
    """Disable an account: it cannot sign in, and its open sessions end at once."""
    row = get_user(session, username)
    if row.disabled_at is None:
        row.disabled_at = now_utc()
    ended = end_user_sessions(session, row.id)
    _audit(session, "user.disabled", row, actor, sessions_ended=ended)
    return row


def enable_user(session: Session, username: str, *, actor: str = "cli") -> User:
    row = get_user(session, username)
    row.disabled_at = None
    _audit(session, "user.enabled", row, actor)
    return row


def set_password(session: Session, username: str, password: str, *, actor: str = "cli") -> User:
    """A new password; the user's open sessions end (sign in again with the new one)."""
    row = get_user(session, username)
    if row.oidc_subject is not None:
        raise InputError(f"{username!r} signs in with single sign-on; it has no local password")
    row.password_hash = hash_password(password)
    end_user_sessions(session, row.id)
    _audit(session, "user.password_changed", row, actor)
    return row


@dataclass(frozen=True)
class SsoIdentity:
    issuer: str
    subject: str
    username: str
    role: Role


class SsoRefused(Exception):
    """An SSO sign-in socflow refuses (the message is shown to the person)."""


def sso_user(session: Session, identity: SsoIdentity) -> Principal:
    """The account of an OpenID Connect identity (made at its first sign-in; its role follows the
    provider's claims at every sign-in). A disabled account, or a name another account has, is refused."""
    row = session.scalar(
        select(User).where(User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject)
    )
    now = now_utc()
    if row is None:
        taken = session.scalar(select(User.id).where(User.username == identity.username))
        if taken is not None:
            raise SsoRefused(
                f"the name {identity.username!r} belongs to another socflow account; "
                "an administrator must rename one"
            )
        row = User(
            username=identity.username,
            role=identity.role.value,
            oidc_issuer=identity.issuer,
            oidc_subject=identity.subject,
            created_at=now,
        )
        session.add(row)
        session.flush()
        _audit(session, "user.created", row, "sso", role=identity.role.value, issuer=identity.issuer)
    if row.disabled_at is not None:
        raise SsoRefused("this socflow account is disabled")
    if row.role != identity.role.value:
        _audit(session, "user.role_changed", row, "sso", role=identity.role.value, was=row.role)
    row.role = identity.role.value
    row.last_login_at = now
    session.flush()
    return principal_of_user(row)


def user_principal(session: Session, user_id: int) -> Principal | None:
    """The principal of an enabled account, by id (checked on every request of a session)."""
    row = session.get(User, user_id)
    if row is None or row.disabled_at is not None:
        return None
    return principal_of_user(row)
