"""Pull Splunk ES notable events: ``POST {url}/services/search/jobs/export`` with ``output_mode=json``.

The search is ``search `notable` | where <after cursor> | sort 0 _time event_id | head <size>``; the answer
is newline-delimited JSON (``{"preview": false, "offset": N, "result": {...}}`` per row). The cursor is the
last stored ``_time`` (epoch seconds) and the ``event_id``\\ s stored at exactly that time, so the next
search asks for ``_time > t OR (_time = t AND NOT event_id IN those)``: notables sharing one second across
a page boundary are neither skipped nor re-read. ``earliest_time`` is set to the cursor so Splunk only
scans from there.
"""

from __future__ import annotations

from typing import Any

import httpx

from socflow.connectors.base import ConnectorError, HttpConnector, IngestFn, PollResult, submit
from socflow.connectors.cursors import CursorStore
from socflow.http import RemoteError, RetryPolicy, export_rows, spl_quote
from socflow.normalize import epoch_seconds

EXPORT_PATH = "/services/search/jobs/export"
MAX_CURSOR_IDS = 1000


def _fmt_time(t: float) -> str:
    return f"{t:.6f}".rstrip("0").rstrip(".")


class SplunkNotablesConnector(HttpConnector):
    fmt = "splunk_notable"

    def __init__(
        self,
        url: str,
        ingest: IngestFn,
        *,
        name: str = "splunk",
        cursors: CursorStore | None = None,
        size: int = 500,
        max_pages: int = 10,
        since: str | None = None,
        search: str = "search `notable`",
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        timeout: float = 60.0,
        verify: bool | str = True,
        ca_bundle: str | None = None,
        source: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``since``: ``earliest_time`` of the very first poll (``-24h``, epoch, ISO; default ``0``, all).
        ``search``: the base search (default the ES ``notable`` macro). Splunk tokens go in
        ``bearer_token``; ``username``/``password`` use basic auth."""
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
        self.size = size
        self.max_pages = max_pages
        self.since = since
        self.base_search = search

    def search_params(self, cursor: dict[str, Any] | None) -> dict[str, str]:
        spl = self.base_search
        earliest = self.since or "0"
        if cursor and cursor.get("time") is not None:
            t = _fmt_time(float(cursor["time"]))
            ids = [str(i) for i in cursor.get("ids") or []]
            if ids:
                seen = ", ".join(spl_quote(i) for i in ids)
                spl += f" | where _time > {t} OR (_time = {t} AND NOT in(event_id, {seen}))"
            else:
                spl += f" | where _time > {t}"
            earliest = t
        spl += f" | sort 0 _time event_id | head {self.size}"
        return {"search": spl, "output_mode": "json", "earliest_time": earliest, "latest_time": "now"}

    def _export(self, cursor: dict[str, Any] | None) -> list[dict[str, Any]]:
        response = self._post(EXPORT_PATH, data=self.search_params(cursor))
        try:
            return export_rows(response.text, name=self.name)
        except RemoteError as exc:
            raise ConnectorError(str(exc)) from None

    def poll_once(self) -> PollResult:
        """Up to ``max_pages`` searches; the cursor is saved after each page is ingested."""
        result = PollResult()
        cursor = self.cursors.load(self.name)
        for _ in range(self.max_pages):
            rows = self._export(cursor)
            if not rows:
                break
            result.add(
                submit(
                    rows,
                    self.ingest,
                    fmt=self.fmt,
                    source=self.source,
                    labels=[f"notable {r.get('event_id', '?')}" for r in rows],
                )
            )
            cursor = self._cursor_after(rows, cursor)
            self.cursors.save(self.name, cursor)
            if len(rows) < self.size:
                break
        else:
            result.more = True
        result.cursor = cursor
        return result

    @staticmethod
    def _cursor_after(rows: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
        times = [(epoch_seconds(r.get("_time")), r) for r in rows]
        known = [(t, r) for t, r in times if t is not None]
        if not known:
            return previous or {}
        last = max(t for t, _ in known)
        ids = [str(r["event_id"]) for t, r in known if t == last and r.get("event_id") is not None]
        if previous and previous.get("time") is not None and float(previous["time"]) == last:
            ids = list(dict.fromkeys([*previous.get("ids", []), *ids]))
        return {"time": last, "ids": ids[-MAX_CURSOR_IDS:]}
