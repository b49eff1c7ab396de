"""OpenID Connect single sign-on for the web UI (Authlib; ``SOCFLOW_OIDC__*``, off by default).

The authorization code flow with PKCE (S256): ``GET /login/oidc`` keeps a fresh ``state``, ``nonce`` and
code verifier in the signed session cookie and sends the browser to the provider; ``GET
/login/oidc/callback`` checks the returned ``state`` against the cookie's, exchanges the code (with the
verifier and the client secret), and verifies the ID token's signature against the provider's JWKS
(asymmetric algorithms only), its issuer, audience, expiry and ``nonce`` (Authlib's ``CodeIDToken``).
Claims missing from the ID token are read from the userinfo endpoint (its ``sub`` must match).

The role comes from ``role_claim`` through ``role_map`` (the first mapped value the claim carries, in the
mapping's order); none -> a 403 page that says so. The person gets a socflow account (``socflow.users``)
at the first sign-in, keyed by issuer and subject; disabling it with ``socflow user disable`` refuses
later sign-ins and ends its sessions. The provider's answers are bounded and never trusted for anything
but these checks.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from socflow.api.deps import Services, services
from socflow.auth import Role
from socflow.settings import OidcSettings
from socflow.users import SsoIdentity, SsoRefused, sso_user
from socflow.web.routes import local_path, render, see_other
from socflow.web.security import anonymous_payload, login_payload

router = APIRouter(include_in_schema=False)

PENDING_MAX_SECONDS = 600  # a sign-in must come back from the provider within this time
METADATA_TTL_SECONDS = 3600
MAX_CLAIM_VALUES = 200
MAX_CLAIM_CHARS = 300
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 60


class SsoError(Exception):
    """A failed sign-in (the message is shown; it never carries a token)."""


class Provider:
    """The provider's discovery document and JWKS, cached per process."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._fetched = 0.0

    def _get(self, url: str) -> dict[str, Any]:
        try:
            resp = httpx.get(url, timeout=self.settings.timeout_seconds, follow_redirects=False)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoError(f"the identity provider could not be reached ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise SsoError("the identity provider answered something that is not a JSON object")
        return data

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._fetched > METADATA_TTL_SECONDS:
                issuer = self.settings.issuer.rstrip("/")
                data = self._get(issuer + "/.well-known/openid-configuration")
                if str(data.get("issuer", "")).rstrip("/") != issuer:
                    raise SsoError("the identity provider's discovery document names another issuer")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(data.get(key), str):
                        raise SsoError(f"the identity provider's discovery document has no {key}")
                self._metadata, self._jwks, self._fetched = data, None, time.monotonic()
            return self._metadata

    def jwks(self, *, force: bool = False) -> KeySet:
        metadata = self.metadata()
        with self._lock:
            if self._jwks is None or force:
                self._jwks = self._get(metadata["jwks_uri"])
            try:
                return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]  # a JWKS dict
            except (JoseError, ValueError, TypeError, KeyError):
                raise SsoError("the identity provider's JWKS could not be read") from None

    def client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret.get_secret_value() or None,
            scope=" ".join(self.settings.scopes),
            redirect_uri=self.settings.redirect_url,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
            timeout=self.settings.timeout_seconds,
        )


_providers: dict[int, Provider] = {}
_providers_lock = threading.Lock()


def provider_of(svc: Services) -> Provider | None:
    """The app's provider (one per Services), or None when SSO is off."""
    settings = svc.settings.oidc
    if not settings.enabled:
        return None
    with _providers_lock:
        found = _providers.get(id(svc))
        if found is None or found.settings is not settings:
            found = _providers[id(svc)] = Provider(settings)
        return found


def sso_enabled(request: Request) -> bool:
    return services(request).settings.oidc.enabled


def _refuse(request: Request, status: int, message: str) -> HTMLResponse:
    request.state.web_session_set = anonymous_payload()  # the pending sign-in is spent
    return render(request, "sso_refused.html", status_code=status, message=message)


@router.get("/login/oidc")
def sso_start(request: Request, next: str = "/") -> Response:
    provider = provider_of(services(request))
    if provider is None:
        return render(
            request, "sso_refused.html", status_code=404, message="Single sign-on is not configured."
        )
    try:
        endpoint = provider.metadata()["authorization_endpoint"]
    except SsoError as exc:
        return _refuse(request, 502, str(exc))
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    with provider.client() as client:
        url, _ = client.create_authorization_url(endpoint, state=state, nonce=nonce, code_verifier=verifier)
    request.state.web_session_set = {
        "csrf": getattr(request.state, "csrf_token", None) or anonymous_payload()["csrf"],
        "oidc": {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": local_path(next),
            "at": time.time(),
        },
    }
    return see_other(url)


def _pending(request: Request) -> dict[str, str] | None:
    data = getattr(request.state, "oidc_pending", None)
    if not isinstance(data, dict):
        return None
    at = data.get("at")
    if not isinstance(at, int | float) or time.time() - at > PENDING_MAX_SECONDS:
        return None
    fields = ("state", "nonce", "verifier", "next")
    if not all(isinstance(data.get(k), str) for k in fields):
        return None
    return {k: data[k] for k in fields}


@router.get("/login/oidc/callback")
def sso_callback(request: Request) -> Response:
    svc = services(request)
    provider = provider_of(svc)
    if provider is None:
        return render(
            request, "sso_refused.html", status_code=404, message="Single sign-on is not configured."
        )
    params = request.query_params
    pending = _pending(request)
    returned = params.get("state") or ""
    if pending is None or not secrets.compare_digest(returned.encode(), pending["state"].encode()):
        return _refuse(
            request, 400, "This sign-in is not the one this browser started (or it took too long). Try again."
        )
    if "error" in params:
        return _refuse(request, 403, f"The identity provider refused the sign-in: {params['error'][:100]}.")
    code = params.get("code") or ""
    if not code or len(code) > 2000:
        return _refuse(request, 400, "The identity provider sent no authorization code.")
    try:
        claims = _verified_claims(provider, code, pending)
        identity = _identity(provider.settings, claims)
        with svc.factory() as session, session.begin():
            who = sso_user(session, identity)
    except (SsoError, SsoRefused) as exc:
        return _refuse(request, 403, str(exc))
    request.state.web_session_set = login_payload(who)
    return see_other(pending["next"])


def _verified_claims(provider: Provider, code: str, pending: dict[str, str]) -> dict[str, Any]:
    """The code exchanged (PKCE verifier, client secret), the ID token verified; userinfo merged in."""
    metadata = provider.metadata()
    try:
        with provider.client() as client:
            token = client.fetch_token(
                metadata["token_endpoint"],
                code=code,
                code_verifier=pending["verifier"],
                state=pending["state"],
            )
    except Exception as exc:  # authlib raises OAuthError, httpx errors, ValueError for odd bodies
        raise SsoError(
            f"the code could not be exchanged at the identity provider ({type(exc).__name__})"
        ) from None
    raw = token.get("id_token")
    if not isinstance(raw, str) or len(raw) > 16_000:
        raise SsoError("the identity provider sent no ID token")
    registry = JWSRegistry(algorithms=ALGORITHMS)
    try:
        try:
            decoded = jwt.decode(raw, provider.jwks(), registry=registry)
        except JoseError:
            decoded = jwt.decode(raw, provider.jwks(force=True), registry=registry)  # keys rotated
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "values": [metadata["issuer"]]}},
            {
                "nonce": pending["nonce"],
                "client_id": provider.settings.client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError) as exc:
        raise SsoError(f"the ID token failed verification ({type(exc).__name__})") from None
    except Exception as exc:  # authlib's claim errors (bad nonce, audience, expiry)
        raise SsoError(
            f"the ID token failed verification ({getattr(exc, 'error', type(exc).__name__)})"
        ) from None
    merged: dict[str, Any] = dict(claims)
    wanted = (provider.settings.role_claim, provider.settings.username_claim)
    userinfo = metadata.get("userinfo_endpoint")
    if any(k not in merged for k in wanted) and isinstance(userinfo, str) and token.get("access_token"):
        try:
            resp = httpx.get(
                userinfo,
                headers={"Authorization": f"Bearer {token['access_token']}"},
                timeout=provider.settings.timeout_seconds,
            )
            resp.raise_for_status()
            extra = resp.json()
        except (httpx.HTTPError, ValueError):
            raise SsoError("the identity provider's userinfo could not be read") from None
        if not isinstance(extra, dict) or extra.get("sub") != merged.get("sub"):
            raise SsoError("the identity provider's userinfo is for another subject")
        merged = {**extra, **merged}
    return merged


def _claim_values(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [v for v in value[:MAX_CLAIM_VALUES] if isinstance(v, str) and len(v) <= MAX_CLAIM_CHARS]


def map_role(settings: OidcSettings, claims: dict[str, Any]) -> Role | None:
    """The role of the first ``role_map`` entry (in its order) that the role claim carries."""
    carried = set(_claim_values(claims.get(settings.role_claim)))
    for value, role in settings.role_map.items():
        if value in carried:
            return Role(role)
    return None


def _identity(settings: OidcSettings, claims: dict[str, Any]) -> SsoIdentity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise SsoError("the ID token has no usable subject")
    role = map_role(settings, claims)
    if role is None:
        raise SsoError(
            f"Your identity provider account carries no {settings.role_claim!r} value that socflow maps to a "
            "role, so socflow cannot let you in. Ask a socflow administrator to map one of your groups "
            "(SOCFLOW_OIDC__ROLE_MAP)."
        )
    name = ""
    for key in (settings.username_claim, "preferred_username", "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200:
            name = value
            break
    return SsoIdentity(issuer=str(claims["iss"]), subject=sub, username=name, role=role)
