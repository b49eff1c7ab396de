"""Request dependencies: the app's services (``socflow.services.Services``) and bearer-token authentication
with roles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy.orm import Session

from socflow.auth import Principal, Role, authenticate
from socflow.services import Services

__all__ = ["MAX_ID", "RowId", "RunId", "Services", "actor", "allow", "db", "principal", "services"]

MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]
RunId = Annotated[str, Path(min_length=1, max_length=36, description="a run id (uuid)")]


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def db(request: Request) -> Iterator[Session]:
    with services(request).factory() as session:
        yield session


def principal(request: Request) -> Principal:
    """The caller: a bearer token, or the web UI's signed session. 401 when neither is valid."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() == "bearer" and raw:
        with services(request).factory() as session, session.begin():
            found = authenticate(session, raw.strip())
        if found is not None:
            return found
    session_principal = getattr(request.state, "session_principal", None)
    if isinstance(session_principal, Principal):
        return session_principal
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def allow(*roles: Role) -> Any:
    """A route dependency admitting these roles (admin always). Its ``allowed_roles`` drive the role tests."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.has(*roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {who.role} may not do this")
        return who

    check.allowed_roles = frozenset(roles) | {Role.admin}  # type: ignore[attr-defined]
    return Depends(check)


def actor(who: Principal) -> str:
    return f"api:{who.name}"
