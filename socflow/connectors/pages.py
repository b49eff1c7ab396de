"""Pages a pull connector fetched, read item by item: one hostile item never loses its page.

A search answer (Elastic/OpenSearch ``_search``) or an export (Splunk, one JSON object per line) is read
from its bytes: invalid UTF-8 becomes U+FFFD, numbers go through ``socflow.untrusted.parse_json`` (NaN,
Infinity and 5,000-digit numbers become markers, not a ``ValueError`` for the whole page), and when the
answer as a whole does not parse (nesting deep enough to exhaust the parser) its ``hits.hits`` array is
found by a string-aware scan and each hit is parsed on its own. Each item is then cleaned
(``clean_json``: NUL removed, nesting bounded, numbers finite and bounded); an item that is not an object
or cannot be cleaned becomes a ``Refusal`` (kept as a dead letter by the connector's ``dead_letter`` hook)
while its sort values, time and id are still read where they can be, so the cursor moves past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from socflow.ingest import IDENTIFIERS, Refusal
from socflow.normalize import epoch_seconds, to_iso
from socflow.untrusted import UnsafeJSON, Unusable, clean_json, json_members, parse_json, split_json_array

MAX_ID_CHARS = 512


@dataclass
class PageItem:
    """One item of a page: ``doc`` (cleaned) or ``refusal``; ``key``/``time``/``sort`` place it."""

    position: int
    label: str
    doc: dict[str, Any] | None = None
    refusal: Refusal | None = None
    key: str | None = None  # what identifies it for the lookback's seen-set (``index/_id``, event id)
    time: float | None = None  # epoch seconds
    timestamp: str | None = None  # the time as the source wrote it (Elastic ``@timestamp``)
    sort: list[Any] | None = None  # Elastic ``sort`` values


class PageError(ValueError):
    """The answer as a whole is unreadable (not JSON, no ``hits.hits``): nothing of it can be used."""


def decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _scalar(value: Any) -> Any:
    """A sort value or id as JSON scalar (bounded string, finite number), else ``None``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**40 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:MAX_ID_CHARS] if "\x00" not in value else None
    return None


def _member(text: str, *path: str) -> Any:
    """The value at ``path`` inside an object's text that does not parse as a whole (``None`` if absent)."""
    for name in path:
        members = json_members(text)
        if members is None or name not in members:
            return None
        text = members[name]
    try:
        return parse_json(text)
    except ValueError:
        return None


def _sort_of(value: Any) -> list[Any] | None:
    if not isinstance(value, list) or not value or len(value) > 8:
        return None
    out = [_scalar(v) for v in value]
    if any(isinstance(v, Unusable) for v in value) or any(
        o is None and v is not None for o, v in zip(out, value, strict=True)
    ):
        return None
    return out


def _refusal(position: int, reason: str, payload: Any, *, field: str | None, source: str | None) -> Refusal:
    return Refusal(index=position, line=None, reason=reason, payload=payload, field=field, source=source)


# -- Elastic / OpenSearch ------------------------------------------------------------------------------
def elastic_hits(body: bytes, *, source: str | None, timestamp_field: str = "@timestamp") -> list[PageItem]:
    """The hits of a ``_search`` answer, each cleaned or refused (see the module docstring)."""
    text = decode(body)
    try:
        answer = parse_json(text)
    except ValueError:
        return _scanned_hits(text, source=source)
    try:
        hits = answer["hits"]["hits"]
    except (KeyError, TypeError):
        raise PageError("the search answer has no hits.hits") from None
    if not isinstance(hits, list):
        raise PageError("hits.hits is not a list")
    return [
        _hit(position, hit, source=source, timestamp_field=timestamp_field)
        for position, hit in enumerate(hits)
    ]


def _scanned_hits(text: str, *, source: str | None) -> list[PageItem]:
    outer = json_members(text)
    inner = json_members(outer["hits"]) if outer and "hits" in outer else None
    parts = split_json_array(inner["hits"]) if inner and "hits" in inner else None
    if parts is None:
        raise PageError("the search answer is not JSON with a hits.hits array")
    items: list[PageItem] = []
    for position, part in enumerate(parts):
        try:
            hit = parse_json(part)
        except ValueError as exc:
            doc_id = _scalar(_member(part, "_id"))
            item = PageItem(position, f"hit {doc_id if doc_id is not None else f'#{position}'}")
            item.refusal = _refusal(position, f"unreadable hit: {exc}", part, field=None, source=source)
            item.sort = _sort_of(_member(part, "sort"))
            item.key = f"{_scalar(_member(part, '_index')) or ''}/{doc_id}" if doc_id is not None else None
            item.time = _sort_time(item.sort)
            items.append(item)
            continue
        items.append(_hit(position, hit, source=source))
    return items


def _sort_time(sort: list[Any] | None) -> float | None:
    if sort and isinstance(sort[0], int | float) and not isinstance(sort[0], bool):
        return epoch_seconds(sort[0] / 1000)  # a date field sorts by epoch milliseconds
    return None


def _hit(position: int, hit: Any, *, source: str | None, timestamp_field: str = "@timestamp") -> PageItem:
    if not isinstance(hit, dict):
        item = PageItem(position, f"hit #{position}")
        reason = "a search hit must be a JSON object"
        item.refusal = _refusal(position, reason, hit, field=None, source=source)
        return item
    doc_id = _scalar(hit.get("_id"))
    item = PageItem(position, f"hit {doc_id if doc_id is not None else f'#{position}'}")
    item.sort = _sort_of(hit.get("sort"))
    if doc_id is not None:
        item.key = f"{_scalar(hit.get('_index')) or ''}/{doc_id}"
    stamp = hit.get("_source", {}).get(timestamp_field) if isinstance(hit.get("_source"), dict) else None
    if isinstance(stamp, str) and len(stamp) <= 100 and "\x00" not in stamp:
        item.time = epoch_seconds(stamp)
        item.timestamp = stamp if item.time is not None else None
    if item.time is None:
        item.time = _sort_time(item.sort)
        if item.timestamp is None and item.time is not None:
            item.timestamp = to_iso(item.time)
    try:
        doc = clean_json({k: v for k, v in hit.items() if k != "_source"})
        if "_source" in hit:  # the document is cleaned as at every door: NUL in its identifiers refused
            document = hit["_source"]
            doc["_source"] = (
                clean_json(document, keep_top=IDENTIFIERS) if isinstance(document, dict) else document
            )
            if not isinstance(document, dict):
                raise UnsafeJSON("_source must be a JSON object", "_source")
        item.doc = doc
    except UnsafeJSON as exc:
        field = (
            f"_source.{exc.path}"
            if exc.path and "_source" in hit and not exc.path.startswith("_source")
            else exc.path
        )
        item.refusal = _refusal(position, exc.reason, hit, field=field or None, source=source)
    return item


# -- Splunk export -------------------------------------------------------------------------------------
def export_rows(body: bytes, *, source: str | None) -> list[PageItem]:
    """The result rows of a ``search/jobs/export`` answer (``output_mode=json``), each cleaned or refused;
    preview rows and messages without a result are skipped."""
    items: list[PageItem] = []
    for number, line in enumerate(decode(body).splitlines(), start=1):
        if not line.strip():
            continue
        position = len(items)
        try:
            message = parse_json(line)
        except ValueError as exc:
            event_id = _scalar(_member(line, "result", "event_id"))
            item = PageItem(position, f"notable {event_id if event_id is not None else f'line {number}'}")
            item.refusal = Refusal(position, number, f"unreadable export line: {exc}", line, source=source)
            item.key = str(event_id) if event_id is not None else None
            item.time = _time(_member(line, "result", "_time"))
            items.append(item)
            continue
        if not isinstance(message, dict):
            item = PageItem(position, f"line {number}")
            item.refusal = Refusal(
                position, number, "an export line must be a JSON object", message, source=source
            )
            items.append(item)
            continue
        if message.get("preview") is True or "result" not in message:
            continue
        row = message["result"]
        if not isinstance(row, dict):
            item = PageItem(position, f"line {number}")
            item.refusal = Refusal(position, number, "a notable must be a JSON object", row, source=source)
            items.append(item)
            continue
        event_id = _scalar(row.get("event_id"))
        item = PageItem(position, f"notable {event_id if event_id is not None else '?'}")
        item.key = str(event_id) if event_id is not None else None
        item.time = _time(row.get("_time"))
        try:
            item.doc = clean_json(row, keep_top=IDENTIFIERS)
        except UnsafeJSON as exc:
            item.refusal = Refusal(position, number, exc.reason, row, field=exc.path or None, source=source)
        items.append(item)
    return items


def _time(value: Any) -> float | None:
    if isinstance(value, str) and len(value) <= 100 and "\x00" not in value:
        return epoch_seconds(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_seconds(value) if abs(value) < 1e12 else None
    return None
