"""The MISP provider: look a value up in a MISP instance's REST API, cached and rate-limited.

Off by default; on when ``SOCFLOW_INTEL__MISP_URL`` and ``SOCFLOW_INTEL__MISP_API_KEY`` are set. Each
lookup is ``POST {url}/attributes/restSearch`` with the API key in the ``Authorization`` header (MISP's
automation key) and the body ``{"returnFormat": "json", "value": ..., "type": [...], "to_ids": true,
"limit": N}``; the answer's ``response.Attribute`` list becomes ``IndicatorIn``s attributed to the source
``misp`` (the event's threat level gives the confidence, as for MISP feed files).

- cache: an answer (matches or none) is kept ``cache_ttl_seconds`` per (type, value), at most
  ``CACHE_ENTRIES`` entries, so a storm of cases about one address makes one request;
- rate limit: at most ``max_requests_per_minute`` requests in any minute; a lookup over the limit is not
  sent (``RateLimited``), the case gets the local store's matches only, never a blocked worker;
- every answer is bounded (``MAX_RESPONSE_BYTES``) and validated like a feed file.

HTTP goes through ``socflow.http.HttpClient`` (retries on 429/5xx, TLS options, secrets redacted);
``transport`` is the test seam. The tests run it against a local HTTP test double of the endpoint
(``tests/intel/misp_double.py``), not a real MISP.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from socflow.errors import SocflowError
from socflow.http import HttpAuth, HttpClient, RemoteError, RetryPolicy
from tools.intel.formats import MISP_THREAT_CONFIDENCE, ParseReport, misp_attribute
from tools.intel.indicators import IndicatorIn, IndicatorType

CACHE_ENTRIES = 10_000
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
SOURCE = "misp"
_MISP_QUERY_TYPES: dict[IndicatorType, list[str]] = {
    IndicatorType.ip: ["ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"],
    IndicatorType.domain: ["domain", "hostname", "domain|ip"],
    IndicatorType.url: ["url", "link"],
    IndicatorType.hash: [
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "filename|md5",
        "filename|sha1",
        "filename|sha256",
    ],
    IndicatorType.email: ["email", "email-src", "email-dst"],
}


class RateLimited(SocflowError):
    """The MISP provider's request budget for this minute is spent; the lookup was not sent."""

    code = "rate_limited"


@dataclass(frozen=True)
class MispConfig:
    url: str
    api_key: str
    verify: bool = True
    ca_bundle: str = ""
    timeout: float = 10.0
    cache_ttl_seconds: float = 3600.0
    max_requests_per_minute: int = 60
    limit: int = 20  # attributes asked for per value


class MispProvider:
    """Look values up in MISP (see the module docstring). Thread-safe: one per process."""

    def __init__(
        self,
        config: MispConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, list[IndicatorIn]]] = OrderedDict()
        self._sent: deque[float] = deque()
        self.requests = 0  # sent to MISP (tests and logs read it)
        self._client = HttpClient(
            config.url,
            name="misp",
            auth=HttpAuth(verify=config.verify, ca_bundle=config.ca_bundle, api_key=config.api_key),
            headers={"Authorization": config.api_key, "Content-Type": "application/json"},
            timeout=config.timeout,
            retry=RetryPolicy(attempts=2, base_seconds=0.5, max_seconds=2.0),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _cached(self, key: tuple[str, str]) -> list[IndicatorIn] | None:
        hit = self._cache.get(key)
        if hit is None or hit[0] <= self._clock():
            return None
        self._cache.move_to_end(key)
        return hit[1]

    def _take_budget(self) -> bool:
        now = self._clock()
        while self._sent and self._sent[0] <= now - 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.config.max_requests_per_minute:
            return False
        self._sent.append(now)
        return True

    def lookup(self, kind: IndicatorType, value: str) -> list[IndicatorIn]:
        """MISP's ``to_ids`` attributes for ``value``; ``RateLimited`` or ``RemoteError`` when not asked."""
        key = (kind.value, value)
        with self._lock:
            cached = self._cached(key)
            if cached is not None:
                return cached
            if not self._take_budget():
                raise RateLimited(f"misp: over {self.config.max_requests_per_minute} requests a minute")
            self.requests += 1
        body = {
            "returnFormat": "json",
            "value": value,
            "type": _MISP_QUERY_TYPES[kind],
            "to_ids": True,
            "limit": self.config.limit,
            "page": 1,
        }
        response = self._client.request("POST", "/attributes/restSearch", json=body)
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise RemoteError(f"misp: the answer is over {MAX_RESPONSE_BYTES} bytes")
        try:
            answer = response.json()
        except (ValueError, RecursionError):
            raise RemoteError("misp: the answer is not JSON") from None
        found = [i for i in _indicators(answer) if (i.type, i.value) == (kind, value)]
        with self._lock:
            self._cache[key] = (self._clock() + self.config.cache_ttl_seconds, found)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return found


def _indicators(answer: Any) -> list[IndicatorIn]:
    response = answer.get("response") if isinstance(answer, dict) else None
    attrs = response.get("Attribute") if isinstance(response, dict) else None
    if not isinstance(attrs, list):
        return []
    report = ParseReport("misp")
    for attr in attrs[:1000]:
        if not isinstance(attr, dict):
            continue
        event = attr.get("Event")
        event = event if isinstance(event, dict) else {}
        confidence = MISP_THREAT_CONFIDENCE.get(str(event.get("threat_level_id", "")))
        misp_attribute(attr, report, SOURCE, confidence, [], event.get("info"))
    return list(report.indicators.values())
