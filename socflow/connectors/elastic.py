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

A hostile page loses nothing: each hit is read and cleaned on its own (``socflow.connectors.pages``); a hit
that is not an object, does not parse, or holds unsafe JSON (a 5,000-digit number, NaN, nesting past 32
levels) is refused with its reason and kept as a dead letter (``dead_letter``), the other hits are
ingested, and the cursor moves past the refused hit by its sort values.
"""

from __future__ import annotations

from typing import Any

import httpx

from socflow.connectors.base import ConnectorError, DeadLetterFn, HttpConnector, IngestFn, PollResult
from socflow.connectors.cursors import CursorStore
from socflow.connectors.pages import PageError, PageItem, elastic_hits
from socflow.http import RetryPolicy
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
        dead_letter: DeadLetterFn | None = None,
        fmt: str | None = None,
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
            dead_letter=dead_letter,
            fmt=fmt,
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

    def _search(self, body: dict[str, Any]) -> list[PageItem]:
        """One page of hits, each readable (``doc``) or refused (``socflow.connectors.pages``)."""
        response = self._post(f"/{self.index}/_search", json=body)
        try:
            return elastic_hits(response.content, source=self.letter_source, timestamp_field=TIMESTAMP)
        except PageError as exc:
            raise ConnectorError(f"{self.name}: {exc}") from None

    def poll_once(self) -> PollResult:
        """Up to ``max_pages`` pages after the cursor, then the lookback window; the cursor is saved after
        each page is ingested (and its refused hits kept as dead letters)."""
        result = PollResult()
        cursor = self.cursors.load(self.name)
        seen: dict[str, float] = dict((cursor or {}).get("seen") or {})
        for _ in range(self.max_pages):
            hits = self._search(self.search_body(cursor))
            if not hits:
                break
            result.add(self._submit(hits))
            after = self._cursor_after(hits, self._remember(seen, hits))
            if after is None:  # not one hit of a page can be placed: the source answers nonsense
                raise ConnectorError(f"{self.name}: no hit of the page has usable sort values")
            cursor = after
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

    def _submit(self, hits: list[PageItem]) -> PollResult:
        if self.fmt == "elastic":  # the mapping reads the hit (``_id``, ``_index``) around its document
            return self.submit_page(hits)
        docs: list[dict[str, Any]] = []
        for hit in hits:
            if hit.refusal is None and hit.doc is not None:
                source = hit.doc.get("_source")
                docs.append(source if isinstance(source, dict) else hit.doc)
        return self.submit_page(hits, docs)

    def _late(self, cursor: dict[str, Any], seen: dict[str, float]) -> list[PageItem]:
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
        late: list[PageItem] = []
        for _ in range(LOOKBACK_MAX_PAGES):
            hits = self._search(body)
            late += [h for h in hits if h.key is not None and h.key not in seen]  # no id: forward pass only
            placed = [h for h in hits if h.sort is not None]
            if len(hits) < self.size or not placed:
                break
            body["search_after"] = placed[-1].sort
        return late

    def _remember(self, seen: dict[str, float], hits: list[PageItem]) -> dict[str, float]:
        """Add ``hits`` to ``seen`` and drop what fell out of the lookback window (at most MAX_SEEN)."""
        if not self.lookback:
            return {}
        for hit in hits:
            if hit.key is not None and hit.time is not None:
                seen[hit.key] = hit.time
        if seen:
            newest = max(seen.values())
            kept = sorted(((t, k) for k, t in seen.items() if t >= newest - self.lookback), reverse=True)
            seen.clear()
            seen.update({k: t for t, k in kept[:MAX_SEEN]})
        return seen

    @staticmethod
    def _cursor_after(hits: list[PageItem], seen: dict[str, float] | None = None) -> dict[str, Any] | None:
        """The cursor after the last hit that can be placed (sort values and a time), refused or not:
        a refused hit is dead-lettered once and the next search starts after it."""
        for hit in reversed(hits):
            sort = hit.sort
            if sort is None and hit.doc is not None and hit.timestamp is not None:  # no sort values echoed
                doc = hit.doc.get("_source") or {}
                uuid = doc.get(TIEBREAKER) or (doc.get("kibana") or {}).get("alert", {}).get("uuid")
                sort = [hit.timestamp, uuid] if isinstance(uuid, str) else None
            if sort is not None and hit.timestamp is not None:
                cursor: dict[str, Any] = {"timestamp": hit.timestamp, "search_after": sort}
                if seen:
                    cursor["seen"] = dict(seen)
                return cursor
        return None
