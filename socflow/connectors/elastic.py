"""Pull Elastic Security alerts: ``POST {url}/{index}/_search`` sorted by ``@timestamp`` and
``kibana.alert.uuid``, paged with ``search_after``.

The cursor is the last stored hit's sort values (and its timestamp). The next query asks for
``@timestamp >= cursor timestamp`` *and* ``search_after`` the cursor's sort values: the range keeps the
search cheap, and ``search_after`` on (timestamp, uuid) makes the boundary exact, so alerts sharing one
timestamp across a page boundary are neither skipped (as ``>`` alone would) nor re-read.
"""

from __future__ import annotations

from typing import Any

import httpx

from socflow.connectors.base import ConnectorError, HttpConnector, IngestFn, PollResult, submit
from socflow.connectors.cursors import CursorStore

DEFAULT_INDEX = ".alerts-security.alerts-default"
TIMESTAMP = "@timestamp"
TIEBREAKER = "kibana.alert.uuid"


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
        source: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``since``: where the very first poll starts (ISO time or Elastic date math such as
        ``now-24h``; default: everything). ``query``: an extra filter clause (e.g. open alerts only)."""
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
            source=source,
            transport=transport,
        )
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

    def _search(self, cursor: dict[str, Any] | None) -> list[dict[str, Any]]:
        response = self._post(f"/{self.index}/_search", json=self.search_body(cursor))
        try:
            hits = response.json()["hits"]["hits"]
        except (ValueError, KeyError, TypeError):
            raise ConnectorError(f"{self.name}: the search answer has no hits.hits") from None
        if not isinstance(hits, list):
            raise ConnectorError(f"{self.name}: hits.hits is not a list")
        return [h for h in hits if isinstance(h, dict)]

    def poll_once(self) -> PollResult:
        """Up to ``max_pages`` pages; the cursor is saved after each page is ingested."""
        result = PollResult()
        cursor = self.cursors.load(self.name)
        for _ in range(self.max_pages):
            hits = self._search(cursor)
            if not hits:
                break
            result.add(
                submit(
                    hits,
                    self.ingest,
                    fmt=self.fmt,
                    source=self.source,
                    labels=[f"hit {h.get('_id', '?')}" for h in hits],
                )
            )
            cursor = self._cursor_after(hits[-1])
            self.cursors.save(self.name, cursor)
            if len(hits) < self.size:
                break
        else:
            result.more = True
        result.cursor = cursor
        return result

    @staticmethod
    def _cursor_after(hit: dict[str, Any]) -> dict[str, Any]:
        doc = hit.get("_source") or {}
        timestamp = doc.get(TIMESTAMP)
        sort = hit.get("sort")
        if not isinstance(sort, list):
            uuid = doc.get(TIEBREAKER) or (doc.get("kibana") or {}).get("alert", {}).get("uuid")
            sort = [timestamp, uuid]
        return {"timestamp": timestamp, "search_after": sort}
