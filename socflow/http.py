"""One HTTP client layer for everything socflow talks to over HTTP: pull connectors, remote SIEMs and
write-back targets.

``HttpClient`` wraps an ``httpx.Client`` with what each of them needs and none should write twice:

- authentication: basic (``username``/``password``), an Elastic API key (``Authorization: ApiKey``) or a
  bearer token (Splunk tokens, OpenSearch JWTs);
- TLS: ``verify`` on or off, or a CA bundle file (``ca_bundle``) for a private CA;
- a timeout per request;
- retries with exponential backoff (and jitter) on connection errors, timeouts, HTTP 429 and 5xx; a
  ``Retry-After`` header is honoured up to the backoff cap; other 4xx fail at once;
- errors and log lines that never show a credential: secrets (and the basic-auth header value) are
  replaced by ``***``, URLs are shown without user info or query, control characters are removed.

    SocflowError
    └── RemoteError                a remote system could not be used (``retryable``: later may work)
        ├── RemoteUnavailable          connection refused, timeout, 429 or 5xx after the retries
        └── RemoteHTTPError            any other HTTP error answer (carries ``status_code``)
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from socflow.errors import SocflowError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_EXCERPT = 300


class RemoteError(SocflowError):
    code = "remote_error"
    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class RemoteUnavailable(RemoteError):
    code = "remote_unavailable"
    retryable = True


class RemoteHTTPError(RemoteError):
    code = "remote_http_error"


@dataclass(frozen=True)
class HttpAuth:
    """Credentials and TLS for one remote system. At most one of api_key / bearer_token is used
    (api_key first); basic auth applies when ``username`` is set."""

    username: str = ""
    password: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)
    verify: bool = True
    ca_bundle: str = ""

    def secrets(self) -> list[str]:
        out = [s for s in (self.password, self.api_key, self.bearer_token) if s]
        if self.username:
            out.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return out

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"ApiKey {self.api_key}"}
        if self.bearer_token:
            return {"Authorization": f"Bearer {self.bearer_token}"}
        return {}

    def tls(self) -> bool | str:
        if not self.verify:
            return False
        return self.ca_bundle or True


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the wait before try n+1 is ``base * 2**n`` (capped, with jitter)."""

    attempts: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 10.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_seconds)
        wait = min(self.base_seconds * 2.0**attempt, self.max_seconds)
        return wait * (0.5 + random.random() / 2)


def display_url(url: str | httpx.URL) -> str:
    """``url`` without user info or query string, for messages."""
    u = httpx.URL(str(url))
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


class HttpClient:
    """A client for one base URL. ``name`` prefixes every error message (``elastic``, ``splunk``, ...).

    ``transport`` is the test seam (``httpx.MockTransport``); ``sleep`` lets tests skip the backoff waits.
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        auth: HttpAuth | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url:
            raise RemoteHTTPError(f"{name}: no URL configured")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.auth = auth or HttpAuth()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._secrets = self.auth.secrets()
        merged = {"Accept": "application/json", **self.auth.headers(), **(headers or {})}
        basic = httpx.BasicAuth(self.auth.username, self.auth.password) if self.auth.username else None
        self._client = httpx.Client(
            auth=basic, headers=merged, timeout=timeout, verify=self.auth.tls(), transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _CONTROL.sub(" ", text)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send ``method`` to base URL + ``path``; retried on transient failures; raises ``RemoteError``."""
        url = self.base_url + path
        where = f"{method} {display_url(url)}"
        attempts = max(1, self.retry.attempts)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {self.redact(str(exc))}".rstrip(": ")
                if last:
                    raise RemoteUnavailable(f"{self.name}: {where} failed: {why}") from None
                log.warning("%s: %s failed (%s); retrying", self.name, where, why)
                self._sleep(self.retry.delay(attempt))
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUS and not last:
                log.warning("%s: %s answered HTTP %s; retrying", self.name, where, response.status_code)
                self._sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                continue
            excerpt = self.redact(response.text[:MAX_EXCERPT]).strip()
            message = f"{self.name}: HTTP {response.status_code} {response.reason_phrase} from {where}" + (
                f": {excerpt}" if excerpt else ""
            )
            cls = RemoteUnavailable if response.status_code in RETRY_STATUS else RemoteHTTPError
            raise cls(message, status_code=response.status_code)
        raise AssertionError("unreachable")  # pragma: no cover

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of the answer; a body that is not JSON is a ``RemoteHTTPError``."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RemoteHTTPError(
                f"{self.name}: {method} {display_url(self.base_url + path)} did not answer JSON",
                status_code=response.status_code,
            ) from None


def spl_quote(value: str) -> str:
    """A Splunk SPL string literal (double quotes, backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export_rows(text: str, *, name: str) -> list[dict[str, Any]]:
    """Rows of a Splunk ``search/jobs/export`` answer (``output_mode=json``, one JSON object per line);
    preview rows skipped."""
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            raise RemoteHTTPError(f"{name}: export line {number} is not JSON") from None
        if not isinstance(message, dict) or message.get("preview") is True:
            continue
        if isinstance(message.get("result"), dict):
            rows.append(message["result"])
    return rows


def search_hits(answer: Any, *, name: str) -> list[dict[str, Any]]:
    """``hits.hits`` of an Elasticsearch/OpenSearch ``_search`` answer."""
    try:
        hits = answer["hits"]["hits"]
    except (KeyError, TypeError):
        raise RemoteHTTPError(f"{name}: the search answer has no hits.hits") from None
    if not isinstance(hits, list):
        raise RemoteHTTPError(f"{name}: hits.hits is not a list")
    return [h for h in hits if isinstance(h, dict)]
