"""Pull Splunk ES notable events: ``POST {url}/services/search/jobs/export`` with ``output_mode=json``.

The search is ``search `notable` | where <after cursor> | sort 0 _time event_id | head <size>``; the answer
is newline-delimited JSON (``{"preview": false, "offset": N, "result": {...}}`` per row). The cursor is the
last stored ``_time`` (epoch seconds) and the ``event_id``\\ s stored at exactly that time, so the next
search asks for ``_time > t OR (_time = t AND NOT event_id IN those)``: notables sharing one second across
a page boundary are neither skipped nor re-read. ``earliest_time`` is set to the cursor so Splunk only
scans from there.

Late-indexed notables (``_time`` older than the cursor when they become searchable: a correlation search
that ran late, an indexer catching up) are found by the lookback, as in the Elastic connector: with
``lookback`` seconds set, each poll also exports ``lookback`` seconds before the cursor (``_time >= t -
lookback AND _time <= t``) and submits only the rows whose ``event_id`` it has not seen. The event ids seen
inside that window are kept in the cursor (``seen``, bounded to ``MAX_SEEN`` and pruned to the window), so
each late notable is ingested once.

A hostile export loses nothing: each line is read and cleaned on its own (``socflow.connectors.pages``); a
line that does not parse, is not an object, or holds unsafe JSON is refused with its reason and kept as a
dead letter (``dead_letter``), the other rows are ingested, and the cursor moves past it by its ``_time``
where that can still be read.
"""

from __future__ import annotations

from typing import Any

import httpx

from socflow.connectors.base import ConnectorError, DeadLetterFn, HttpConnector, IngestFn, PollResult
from socflow.connectors.cursors import CursorStore
from socflow.connectors.pages import PageItem, export_rows
from socflow.http import RetryPolicy, spl_quote

EXPORT_PATH = "/services/search/jobs/export"
MAX_CURSOR_IDS = 1000
MAX_SEEN = 10_000
LOOKBACK_MAX_PAGES = 100  # the lookback export reads at most ``size`` x this many rows


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
        lookback: float = 0.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        dead_letter: DeadLetterFn | None = None,
        fmt: str | None = None,
    ) -> None:
        """``since``: ``earliest_time`` of the very first poll (``-24h``, epoch, ISO; default ``0``, all).
        ``search``: the base search (default the ES ``notable`` macro). Splunk tokens go in
        ``bearer_token``; ``username``/``password`` use basic auth. ``lookback``: seconds before the
        cursor re-read each poll for late-indexed notables (0: off)."""
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

    def late_params(self, start: float, end: float) -> dict[str, str]:
        """The lookback search: notables with ``start <= _time <= end`` (at most LOOKBACK_MAX_ROWS)."""
        a, b = _fmt_time(start), _fmt_time(end)
        spl = (
            f"{self.base_search} | where _time >= {a} AND _time <= {b} | sort 0 _time event_id"
            f" | head {self.size * LOOKBACK_MAX_PAGES}"
        )
        return {"search": spl, "output_mode": "json", "earliest_time": a, "latest_time": "now"}

    def _export(self, params: dict[str, str]) -> list[PageItem]:
        """One export's rows, each readable (``doc``) or refused (``socflow.connectors.pages``)."""
        response = self._post(EXPORT_PATH, data=params)
        return export_rows(response.content, source=self.letter_source)

    def poll_once(self) -> PollResult:
        """Up to ``max_pages`` searches, then the lookback window; the cursor is saved after each page is
        ingested (and its refused rows kept as dead letters)."""
        result = PollResult()
        cursor = self.cursors.load(self.name)
        seen: dict[str, float] = dict((cursor or {}).get("seen") or {})
        for _ in range(self.max_pages):
            rows = self._export(self.search_params(cursor))
            if not rows:
                break
            result.add(self._submit(rows))
            after = self._cursor_after(rows, cursor, self._remember(seen, rows))
            if after is None:
                raise ConnectorError(f"{self.name}: no row of the export has a usable _time")
            cursor = after
            self.cursors.save(self.name, cursor)
            if len(rows) < self.size:
                break
        else:
            result.more = True
        if self.lookback and cursor and cursor.get("time") is not None:
            end = float(cursor["time"])
            late = [
                r
                for r in self._export(self.late_params(end - self.lookback, end))
                if r.key is not None and r.key not in seen  # a row without an event id: forward pass only
            ]
            if late:
                result.add(self._submit(late))
                cursor = {**cursor, "seen": self._remember(seen, late)}
                self.cursors.save(self.name, cursor)
        result.cursor = cursor
        return result

    def _submit(self, rows: list[PageItem]) -> PollResult:
        if self.fmt == "splunk_notable":
            return self.submit_page(rows)
        # another format: Splunk's own fields (``_time``, ``_raw``, ``_cd``, ...) are not the document's
        docs = [
            {k: v for k, v in r.doc.items() if not k.startswith("_")}
            for r in rows
            if r.refusal is None and r.doc is not None
        ]
        return self.submit_page(rows, docs)

    def _remember(self, seen: dict[str, float], rows: list[PageItem]) -> dict[str, float]:
        """Add ``rows`` to ``seen`` and drop what fell out of the lookback window (at most MAX_SEEN)."""
        if not self.lookback:
            return {}
        for row in rows:
            if row.key is not None and row.time is not None:
                seen[row.key] = row.time
        if seen:
            newest = max(seen.values())
            kept = sorted(((t, k) for k, t in seen.items() if t >= newest - self.lookback), reverse=True)
            seen.clear()
            seen.update({k: t for t, k in kept[:MAX_SEEN]})
        return seen

    @staticmethod
    def _cursor_after(
        rows: list[PageItem], previous: dict[str, Any] | None, seen: dict[str, float] | None = None
    ) -> dict[str, Any] | None:
        """The newest ``_time`` of the page (refused rows included: they are dead-lettered once) and the
        event ids at that time; ``None`` when no row has a usable time."""
        known = [(r.time, r.key) for r in rows if r.time is not None]
        if not known:
            return None
        last = max(t for t, _ in known)
        ids = [k for t, k in known if t == last and k is not None]
        if previous and previous.get("time") is not None and float(previous["time"]) == last:
            ids = list(dict.fromkeys([*previous.get("ids", []), *ids]))
        cursor: dict[str, Any] = {"time": last, "ids": ids[-MAX_CURSOR_IDS:]}
        if seen:
            cursor["seen"] = dict(seen)
        return cursor
