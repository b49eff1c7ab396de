"""The web UI's session cookie, CSRF check and security headers (one pure ASGI middleware).

* Session: a cookie signed with ``SOCFLOW_API__SECRET_KEY`` (itsdangerous ``URLSafeTimedSerializer``)
  holding ``{sid, token_id | user_id, name, role, csrf}``; anonymous visitors get one holding only
  ``csrf`` (the login form needs it; a single sign-on in progress adds its ``oidc`` state, nonce and PKCE
  verifier). A signed-in session lives on the server (``web_sessions``, keyed by the sha256 of ``sid``):
  logging out ends it there, so a copied cookie stops working at once; so does revoking or expiring the
  token behind it, or disabling the user account (re-checked on every request). The principal lands on
  ``request.state.session_principal``, which ``socflow.api.deps.principal`` accepts, so the UI and the
  REST API share one set of rules.
* Login attempts: at most ``LOGIN_FAILURES`` failed ``POST /login`` or ``POST /login/password`` per
  client address per ``LOGIN_WINDOW_SECONDS``; past that the login answers 429 until the window moves on.
* API requests that carry a body (POST, PUT, PATCH, DELETE under ``/api/``) are authenticated before the
  body is read: no valid bearer token and no signed-in session -> 401 at once; a declared body over
  ``max_body_bytes`` -> 413.
* CSRF: every unsafe request (POST, PUT, PATCH, DELETE) to a page of the UI must carry the session's
  token, as the form field ``csrf_token`` or the header ``X-CSRF-Token``; an unsafe ``/api/`` request
  authenticated by the cookie (no ``Authorization`` header) must send the header. Otherwise: 403.
  Requests with an ``Authorization`` header never use the cookie.
* Headers: a strict Content-Security-Policy (no inline script or style), ``nosniff``, no framing, no
  referrer across origins; pages of the UI are never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socflow.auth import Principal, principal_of, token_is_valid
from socflow.schemas import now_utc
from socflow.tables import ApiToken, WebSession
from socflow.users import user_principal

COOKIE = "socflow_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_FAILURES = 10
LOGIN_WINDOW_SECONDS = 300.0
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
LOGIN_PATHS = frozenset({"/login", "/login/password"})
NO_CSP_PATHS = ("/docs", "/redoc")  # FastAPI's API explorer pages load their own scripts
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class CookieSession:
    """What the cookie says, after the server-side session and the token behind it were re-checked."""

    csrf: str
    principal: Principal | None = None
    sid: str | None = None
    oidc: dict[str, Any] | None = None  # a single sign-on in progress (state, nonce, PKCE verifier)


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
    owner: dict[str, Any] = (
        {"user_id": who.user_id} if who.user_id is not None else {"token_id": who.token_id}
    )
    return {**owner, "name": who.name, "role": who.role.value, "csrf": new_csrf()}


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
        return principal_of(row)


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def session_principal(
    factory: sessionmaker[Session], sid: Any, token_id: Any, user_id: Any = None
) -> Principal | None:
    """The principal of a live server-side session (not ended, not expired, its token still valid or
    its user account still enabled)."""
    if not isinstance(sid, str) or len(sid) > 100:
        return None
    if not (isinstance(token_id, int) ^ isinstance(user_id, int)):
        return None
    with factory() as session:
        row = session.get(WebSession, _sid_hash(sid))
        if row is None or row.ended_at is not None or row.expires_at <= now_utc():
            return None
        if isinstance(user_id, int):
            return user_principal(session, user_id) if row.user_id == user_id else None
        if row.token_id != token_id:
            return None
    return token_principal(factory, token_id)


def start_session(factory: sessionmaker[Session], token_id: int | None, user_id: int | None = None) -> str:
    """A new server-side session for an API token or a user account; returns the id the cookie carries."""
    sid = secrets.token_urlsafe(32)
    now = now_utc()
    with factory() as session, session.begin():
        session.add(
            WebSession(
                id=_sid_hash(sid),
                token_id=token_id,
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=SESSION_MAX_AGE),
            )
        )
    return sid


def end_session(factory: sessionmaker[Session], sid: Any) -> None:
    """Logout: the session ends on the server, whatever copies of its cookie exist."""
    if not isinstance(sid, str) or len(sid) > 100:
        return
    with factory() as session, session.begin():
        row = session.get(WebSession, _sid_hash(sid))
        if row is not None and row.ended_at is None:
            row.ended_at = now_utc()


def bearer_is_valid(factory: sessionmaker[Session], raw: str) -> bool:
    with factory() as session:
        return token_is_valid(session, raw)


class LoginLimiter:
    """Failed logins per client address in a sliding window (in this process)."""

    def __init__(self, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, client: str, now: float) -> deque[float]:
        times = self._failures[client]
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        with self._lock:
            times = self._trim(client, time.monotonic())
            if not times:
                self._failures.pop(client, None)
            return len(times) >= self.limit

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._trim(client, now).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
                self._failures.clear()


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
        self,
        app: ASGIApp,
        *,
        secret_key: str,
        factory: sessionmaker[Session],
        secure_cookie: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.codec = SessionCodec(secret_key)
        self.factory = factory
        self.secure_cookie = secure_cookie
        self.max_body_bytes = max_body_bytes
        self.logins = LoginLimiter()

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
            state["oidc_pending"] = session.oidc
        elif not api and not bearer and not path.startswith("/static/"):
            state["web_session_set"] = anonymous_payload()  # a first visit: issue an anonymous session
            state["csrf_token"] = state["web_session_set"]["csrf"]

        method = scope.get("method", "GET")
        if api and method not in SAFE_METHODS and path.startswith("/api/"):
            refusal = await self._before_body(scope, session)
            if refusal is not None:
                await self._send_json(send, *refusal)
                return
        login = method == "POST" and path in LOGIN_PATHS
        client = (scope.get("client") or ("unknown", 0))[0]
        if login and self.logins.blocked(client):
            await self._send_json(send, 429, "too many failed logins; try again later", "rate_limited")
            return
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

        state["web_session_sid"] = session.sid if session is not None else None
        await self.app(scope, receive, self._sender(scope, send, path, client if login else None))

    async def _before_body(self, scope: Scope, session: CookieSession | None) -> tuple[int, str, str] | None:
        """Why an API request with a body is refused before its body is read (or ``None``)."""
        header = _header(scope, b"authorization")
        if header is not None:
            scheme, _, raw = header.partition(" ")
            ok = scheme.lower() == "bearer" and bool(raw.strip())
            if ok:
                ok = await anyio.to_thread.run_sync(bearer_is_valid, self.factory, raw.strip())
            if not ok:
                return 401, "a valid bearer token is required", "unauthorized"
        elif session is None or session.principal is None:
            return 401, "a valid bearer token is required", "unauthorized"
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, f"body size (bytes) over the limit of {self.max_body_bytes}", "too_large"
        return None

    async def _send_json(self, send: Send, status: int, detail: str, code: str) -> None:
        body = json.dumps({"detail": detail, "code": code}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _load(self, scope: Scope) -> CookieSession | None:
        raw = _cookie(scope, COOKIE)
        data = self.codec.loads(raw) if raw else None
        if data is None:
            return None
        principal = None
        sid = data.get("sid")
        if "token_id" in data or "user_id" in data:
            principal = await anyio.to_thread.run_sync(
                session_principal, self.factory, sid, data.get("token_id"), data.get("user_id")
            )
            if principal is None:
                return None  # logged out, token revoked or expired, user disabled: the session is over
        oidc = data.get("oidc") if principal is None and isinstance(data.get("oidc"), dict) else None
        return CookieSession(
            csrf=data["csrf"], principal=principal, sid=sid if principal else None, oidc=oidc
        )

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

    def _sender(self, scope: Scope, send: Send, path: str, login_client: str | None = None) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if login_client is not None and message.get("status") == 401:
                    self.logins.failed(login_client)
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
                state = scope.get("state", {})
                payload = state.get("web_session_set")
                if payload is not None:
                    payload = await self._persist(payload, state.get("web_session_sid"))
                    headers.append((b"set-cookie", self._cookie_header(payload).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

    async def _persist(self, payload: dict[str, Any], old_sid: str | None) -> dict[str, Any]:
        """A new cookie replaces the session (login, logout): the old server-side session ends, and a
        signed-in payload gets a fresh one."""
        if old_sid is not None:
            await anyio.to_thread.run_sync(end_session, self.factory, old_sid)
        token_id = payload.get("token_id")
        user_id = payload.get("user_id")
        if (isinstance(token_id, int) or isinstance(user_id, int)) and "sid" not in payload:
            sid = await anyio.to_thread.run_sync(start_session, self.factory, token_id, user_id)
            payload = {**payload, "sid": sid}
        return payload

    def _cookie_header(self, payload: dict[str, Any]) -> str:
        value = self.codec.dumps(payload)
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={value}; Path=/; Max-Age={SESSION_MAX_AGE}; HttpOnly; SameSite=Lax{secure}"
