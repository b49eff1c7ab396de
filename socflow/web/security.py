"""The web UI's session cookie, CSRF check and security headers (one pure ASGI middleware).

* Session: a cookie signed with ``SOCFLOW_API__SECRET_KEY`` (itsdangerous ``URLSafeTimedSerializer``)
  holding ``{token_id, name, role, csrf}``; anonymous visitors get one holding only ``csrf`` (the login
  form needs it). The token behind a session is re-checked on every request: a revoked or expired token
  ends the session at once. The principal lands on ``request.state.session_principal``, which
  ``socflow.api.deps.principal`` accepts, so the UI and the REST API share one set of rules.
* CSRF: every unsafe request (POST, PUT, PATCH, DELETE) to a page of the UI must carry the session's
  token, as the form field ``csrf_token`` or the header ``X-CSRF-Token``; an unsafe ``/api/`` request
  authenticated by the cookie (no ``Authorization`` header) must send the header. Otherwise: 403.
  Requests with an ``Authorization`` header never use the cookie.
* Headers: a strict Content-Security-Policy (no inline script or style), ``nosniff``, no framing, no
  referrer across origins; pages of the UI are never cached.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socflow.auth import Principal, Role
from socflow.schemas import now_utc
from socflow.tables import ApiToken

COOKIE = "socflow_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
NO_CSP_PATHS = ("/docs", "/redoc")  # FastAPI's API explorer pages load their own scripts
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class WebSession:
    """What the cookie says, after the token behind it was re-checked."""

    csrf: str
    principal: Principal | None = None


class SessionCodec:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="socflow.web.session")

    def dumps(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def loads(self, raw: str) -> dict[str, Any] | None:
        try:
            data = self._serializer.loads(raw, max_age=SESSION_MAX_AGE)
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def anonymous_payload() -> dict[str, Any]:
    return {"csrf": new_csrf()}


def login_payload(who: Principal) -> dict[str, Any]:
    """A fresh session for ``who`` (a new CSRF token too: no fixation across the login)."""
    return {"token_id": who.token_id, "name": who.name, "role": who.role.value, "csrf": new_csrf()}


def token_principal(factory: sessionmaker[Session], token_id: Any) -> Principal | None:
    """The principal of a still valid (unrevoked, unexpired) token, by id."""
    if not isinstance(token_id, int):
        return None
    with factory() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now_utc():
            return None
        return Principal(name=row.name, role=Role(row.role), token_id=row.id)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/openapi.json", "/healthz", "/readyz", "/metrics")


class WebSessionMiddleware:
    """Sessions, CSRF and security headers for the web UI (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, secret_key: str, factory: sessionmaker[Session], secure_cookie: bool = False
    ) -> None:
        self.app = app
        self.codec = SessionCodec(secret_key)
        self.factory = factory
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        api = is_api_path(path)
        bearer = _header(scope, b"authorization") is not None
        state = scope.setdefault("state", {})
        session = None if bearer else await self._load(scope)
        if session is not None:
            state["session_principal"] = session.principal
            state["csrf_token"] = session.csrf
        elif not api and not bearer and not path.startswith("/static/"):
            state["web_session_set"] = anonymous_payload()  # a first visit: issue an anonymous session
            state["csrf_token"] = state["web_session_set"]["csrf"]

        method = scope.get("method", "GET")
        if method not in SAFE_METHODS and not bearer:
            if api:
                if session is not None and session.principal is not None:
                    sent = _header(scope, CSRF_HEADER.encode())
                    if not (sent and hmac.compare_digest(sent, session.csrf)):
                        await self._refuse(scope, send, api=True)
                        return
            else:
                expected = session.csrf if session is not None else None
                sent, receive = await self._form_token(scope, receive)
                if expected is None or sent is None or not hmac.compare_digest(sent, expected):
                    await self._refuse(scope, send, api=False)
                    return

        await self.app(scope, receive, self._sender(scope, send, path))

    async def _load(self, scope: Scope) -> WebSession | None:
        raw = _cookie(scope, COOKIE)
        data = self.codec.loads(raw) if raw else None
        if data is None:
            return None
        principal = None
        if "token_id" in data:
            principal = await anyio.to_thread.run_sync(token_principal, self.factory, data.get("token_id"))
            if principal is None:
                return None  # the token was revoked or expired: the session is over
        return WebSession(csrf=data["csrf"], principal=principal)

    async def _form_token(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        """The CSRF token of an unsafe request (header, or urlencoded form field); the body is replayed."""
        header = _header(scope, CSRF_HEADER.encode())
        if header:
            return header, receive
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return None, receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None, receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return None, receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            values = parse_qs(body.decode("utf-8"), keep_blank_values=True).get(CSRF_FIELD) or []
        except UnicodeDecodeError:
            values = []
        return (values[0] if values else None), replay

    async def _refuse(self, scope: Scope, send: Send, *, api: bool) -> None:
        if api:
            body = json.dumps({"detail": "CSRF token missing or invalid", "code": "csrf_failed"}).encode()
            ctype = b"application/json"
        else:
            body = (
                b"<!doctype html><title>Refused</title><h1>Refused</h1>"
                b"<p>This form is missing its CSRF token or the session expired. "
                b'<a href="/">Reload the page</a> and try again.</p>'
            )
            ctype = b"text/html; charset=utf-8"
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _sender(self, scope: Scope, send: Send, path: str) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                if not path.startswith(NO_CSP_PATHS):
                    headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if (
                    not is_api_path(path)
                    and not path.startswith("/static/")
                    and b"cache-control" not in names
                ):
                    headers.append((b"cache-control", b"no-store"))
                payload = scope.get("state", {}).get("web_session_set")
                if payload is not None:
                    headers.append((b"set-cookie", self._cookie_header(payload).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

    def _cookie_header(self, payload: dict[str, Any]) -> str:
        value = self.codec.dumps(payload)
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={value}; Path=/; Max-Age={SESSION_MAX_AGE}; HttpOnly; SameSite=Lax{secure}"
