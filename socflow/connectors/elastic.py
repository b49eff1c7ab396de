"""Pull Elastic Security alerts: ``POST {url}/{index}/_search`` sorted by ``@timestamp`` and
``kibana.alert.uuid``, paged with ``search_after``.

The cursor is the last stored hit's sort values (and its timestamp). The next query asks for
``@timestamp >= cursor timestamp`` *and* ``search_after`` the cursor's sort values: the range keeps the
search cheap, and ``search_after`` on (timestamp, uuid) makes the boundary exact, so alerts sharing one
timestamp across a page boundary are neither skipped (as ``>`` alone would) nor re-read.

Late-indexed alerts (an alert whose ``@timestamp`` is older than the cursor when it becomes searchable:
refresh intervals, a slow rule, a cluster catching up) are found by the lookback: with ``lookback`` seconds
set, each poll also re-reads ``[cursor - lookback, cursor]`` and submits only hits it has not seen. The ids
seen inside that window are kept in the cursor (bounded), so each late alert is ingested once and the
re-read costs no duplicate work.
"""

from __future__ import annotations

from typing import Any

import httpx

from socflow.connectors.base import HttpConnector, IngestFn, PollResult, connector_error, submit
from socflow.connectors.cursors import CursorStore
from socflow.http import RemoteError, RetryPolicy, search_hits
from socflow.normalize import epoch_seconds, to_iso

DEFAULT_INDEX = ".alerts-security.alerts-default"
TIMESTAMP = "@timestamp"
TIEBREAKER = "kibana.alert.uuid"
MAX_SEEN = 10_000
LOOKBACK_MAX_PAGES = 100  # the lookback window is read to its end (bounded), whatever ``max_pages`` is


class ElasticAlertsConnector(HttpConnector):
    fmt = "elastic"

    def __init__(
        self,
        url: str,
        ingest: IngestFn,
        *,
        index: str = DEFAULT_INDEX,
        name: str = "elastic",
        cursors: CursorStore | None = None,
        size: int = 500,
        max_pages: int = 10,
        since: str | None = None,
        query: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        ca_bundle: str | None = None,
        source: str | None = None,
        lookback: float = 0.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``since``: where the very first poll starts (ISO time or Elastic date math such as
        ``now-24h``; default: everything). ``query``: an extra filter clause (e.g. open alerts only).
        ``lookback``: seconds before the cursor re-read each poll for late-indexed alerts (0: off)."""
        super().__init__(
            url,
            ingest,
            name=name,
            cursors=cursors,
            username=username,
            password=password,
            api_key=api_key,
            bearer_token=bearer_token,
            timeout=timeout,
            verify=verify,
            ca_bundle=ca_bundle,
            source=source,
            retry=retry,
            transport=transport,
        )
        self.lookback = max(0.0, lookback)
        self.index = index
        self.size = size
        self.max_pages = max_pages
        self.since = since
        self.query = query

    def search_body(self, cursor: dict[str, Any] | None) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        if cursor and cursor.get("timestamp"):
            op = "gte" if cursor.get("search_after") else "gt"
            filters.append({"range": {TIMESTAMP: {op: cursor["timestamp"]}}})
        elif self.since:
            filters.append({"range": {TIMESTAMP: {"gte": self.since}}})
        if self.query:
            filters.append(self.query)
        body: dict[str, Any] = {
            "size": self.size,
            "sort": [{TIMESTAMP: {"order": "asc"}}, {TIEBREAKER: {"order": "asc"}}],
            "query": {"bool": {"filter": filters}},
            "track_total_hits": False,
        }
        if cursor and cursor.get("search_after"):
            body["search_after"] = cursor["search_after"]
        return body

    def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            answer = self.http.json("POST", f"/{self.index}/_search", json=body)
            return search_hits(answer, name=self.name)
        except RemoteError as exc:
            raise connector_error(exc) from None

    def poll_once(self) -> PollResult:
        """Up to ``max_pages`` pages after the cursor, then the lookback window; the cursor is saved after
        each page is ingested."""
        result = PollResult()
        cursor = self.cursors.load(self.name)
        seen: dict[str, float] = dict((cursor or {}).get("seen") or {})
        for _ in range(self.max_pages):
            hits = self._search(self.search_body(cursor))
            if not hits:
                break
            result.add(self._submit(hits))
            cursor = self._cursor_after(hits[-1], self._remember(seen, hits))
            self.cursors.save(self.name, cursor)
            if len(hits) < self.size:
                break
        else:
            result.more = True
        if self.lookback and cursor and cursor.get("timestamp"):
            late = self._late(cursor, seen)
            if late:
                result.add(self._submit(late))
                cursor = {**cursor, "seen": self._remember(seen, late)}
                self.cursors.save(self.name, cursor)
        result.cursor = cursor
        return result

    def _submit(self, hits: list[dict[str, Any]]) -> PollResult:
        return submit(
            hits,
            self.ingest,
            fmt=self.fmt,
            source=self.source,
            labels=[f"hit {h.get('_id', '?')}" for h in hits],
        )

    def _late(self, cursor: dict[str, Any], seen: dict[str, float]) -> list[dict[str, Any]]:
        """Hits in ``[cursor - lookback, cursor]`` not seen before."""
        end = epoch_seconds(cursor["timestamp"])
        if end is None:
            return []
        start = to_iso(end - self.lookback)
        filters: list[dict[str, Any]] = [{"range": {TIMESTAMP: {"gte": start, "lte": cursor["timestamp"]}}}]
        if self.query:
            filters.append(self.query)
        body: dict[str, Any] = {
            "size": self.size,
            "sort": [{TIMESTAMP: {"order": "asc"}}, {TIEBREAKER: {"order": "asc"}}],
            "query": {"bool": {"filter": filters}},
            "track_total_hits": False,
        }
        late: list[dict[str, Any]] = []
        for _ in range(LOOKBACK_MAX_PAGES):
            hits = self._search(body)
            late += [h for h in hits if self._key(h) not in seen]
            if len(hits) < self.size or not isinstance(hits[-1].get("sort"), list):
                break
            body["search_after"] = hits[-1]["sort"]
        return late

    @staticmethod
    def _key(hit: dict[str, Any]) -> str:
        return f"{hit.get('_index', '')}/{hit.get('_id', '')}"

    def _remember(self, seen: dict[str, float], hits: list[dict[str, Any]]) -> dict[str, float]:
        """Add ``hits`` to ``seen`` and drop what fell out of the lookback window (at most MAX_SEEN)."""
        if not self.lookback:
            return {}
        for hit in hits:
            t = epoch_seconds((hit.get("_source") or {}).get(TIMESTAMP))
            if t is not None:
                seen[self._key(hit)] = t
        if seen:
            newest = max(seen.values())
            kept = sorted(((t, k) for k, t in seen.items() if t >= newest - self.lookback), reverse=True)
            seen.clear()
            seen.update({k: t for t, k in kept[:MAX_SEEN]})
        return seen

    @staticmethod
    def _cursor_after(hit: dict[str, Any], seen: dict[str, float] | None = None) -> dict[str, Any]:
        doc = hit.get("_source") or {}
        timestamp = doc.get(TIMESTAMP)
        sort = hit.get("sort")
        if not isinstance(sort, list):
            uuid = doc.get(TIEBREAKER) or (doc.get("kibana") or {}).get("alert", {}).get("uuid")
            sort = [timestamp, uuid]
        cursor: dict[str, Any] = {"timestamp": timestamp, "search_after": sort}
        if seen:
            cursor["seen"] = dict(seen)
        return cursor
