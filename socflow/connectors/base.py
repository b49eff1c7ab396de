"""What every pull connector shares: errors, the poll result, normalization before ingest, the run loop,
and the HTTP client (``socflow.http``: auth, TLS, retries, redacted errors).

    SocflowError
    └── ConnectorError              a connector could not fetch (transport error, bad response)
        └── ConnectorHTTPError        the remote answered with an HTTP error (``status_code``)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from socflow.connectors.cursors import CursorStore, MemoryCursorStore
from socflow.connectors.pages import PageItem
from socflow.errors import InputError, SocflowError
from socflow.http import HttpAuth, HttpClient, RemoteError, RetryPolicy
from socflow.ingest import Refusal
from socflow.normalize import DEFAULT_SOURCES, FORMATS, to_generic

log = logging.getLogger(__name__)

MAX_PROBLEMS = 50
MAX_BACKOFF_SECONDS = 300.0


class ConnectorError(SocflowError):
    code = "connector_error"


class ConnectorHTTPError(ConnectorError):
    code = "connector_http_error"

    def __init__(self, message: str, *, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class IngestReportLike(Protocol):
    """What the ingest callback returns (``socflow.schemas.IngestReport`` fits)."""

    @property
    def accepted(self) -> int: ...

    @property
    def duplicates(self) -> int: ...

    @property
    def rejected(self) -> int: ...


IngestFn = Callable[[list[dict[str, Any]]], IngestReportLike]
DeadLetterFn = Callable[[list[Refusal]], Any]
"""Keeps refused items as dead letters (``IngestService.refuse`` fits, with the door's actor bound)."""


def _why(refusal: Refusal) -> str:
    return f"{refusal.field}: {refusal.reason}" if refusal.field else refusal.reason


@dataclass
class PollResult:
    """One poll: how many items came in and what ingest made of them; ``cursor`` as saved after it."""

    fetched: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    cursor: dict[str, Any] | None = None
    more: bool = False  # stopped at max_pages with a full last page: poll again without waiting
    problems: list[str] = field(default_factory=list)

    def add(self, other: PollResult) -> None:
        self.fetched += other.fetched
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.problems.extend(other.problems[: MAX_PROBLEMS - len(self.problems)])

    def summary(self) -> str:
        return (
            f"fetched={self.fetched} accepted={self.accepted} duplicates={self.duplicates} "
            f"rejected={self.rejected}"
        )


def submit(
    items: Sequence[Mapping[str, Any]],
    ingest: IngestFn,
    *,
    fmt: str,
    field_map: Mapping[str, str] | None = None,
    source: str | None = None,
    labels: Sequence[str] | None = None,
    refused: Sequence[tuple[str, Refusal]] = (),
    dead_letter: DeadLetterFn | None = None,
) -> PollResult:
    """Normalize vendor items onto the generic format and hand them to ``ingest`` in one call.

    An item that cannot be normalized is counted as rejected (with its reason in ``problems``); the rest
    still go in. ``labels`` name the items in problems (default: ``item N``). ``refused``: (label,
    refusal) of items the connector already refused (unreadable, not an object, unsafe JSON); they count
    as fetched and rejected. With ``dead_letter`` every refusal made here (``refused`` and the items that
    could not be normalized) is kept as a dead letter after the ingest call; the items ingest itself
    rejects are kept by the ingest service.
    """
    result = PollResult(fetched=len(items) + len(refused), rejected=len(refused))
    names = list(labels) if labels is not None else [f"item {i}" for i in range(len(items))]
    alerts: list[dict[str, Any]] = []
    sent: list[int] = []  # position in ``items`` of each alert handed to ingest
    problems: dict[int, str] = {}
    letters: list[Refusal] = []
    for label, refusal in refused:
        problems[-len(refused) + len(letters)] = f"{label}: {_why(refusal)}"
        letters.append(replace(refusal, reason=f"{label}: {refusal.reason}"))
    for position, item in enumerate(items):
        try:
            alerts.append(to_generic(dict(item), fmt=fmt, field_map=field_map, source=source))
            sent.append(position)
        except InputError as exc:
            result.rejected += 1
            problems[position] = f"{names[position]}: {exc}"
            reason = f"{names[position]}: {exc.reason}"
            letters.append(Refusal(position, None, reason, item, field=exc.field, source=source))
    if alerts:
        report = ingest(alerts)
        result.accepted += report.accepted
        result.duplicates += report.duplicates
        result.rejected += report.rejected
        for entry in getattr(report, "items", None) or []:
            if getattr(entry, "status", None) == "rejected" and 0 <= entry.index < len(sent):
                position = sent[entry.index]
                field_name = f"{entry.field}: " if getattr(entry, "field", None) else ""
                problems[position] = f"{names[position]}: {field_name}{entry.reason}"
    if letters and dead_letter is not None:
        dead_letter(letters)
    result.problems = [problems[k] for k in sorted(problems)]
    del result.problems[MAX_PROBLEMS:]
    for problem in result.problems:
        log.warning("rejected %s", problem)
    return result


class Connector:
    """A source polled on an interval. Subclasses implement ``poll_once``."""

    name: str = "connector"

    def poll_once(self) -> PollResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients; the base holds none."""

    def run(
        self,
        interval: float,
        stop_event: threading.Event,
        *,
        on_poll: Callable[[PollResult], None] | None = None,
        on_error: Callable[[ConnectorError], None] | None = None,
    ) -> None:
        """Poll until ``stop_event`` is set: ``interval`` seconds between polls, at once while more is
        waiting, and an exponential backoff (capped at 5 minutes) after connector errors."""
        failures = 0
        while not stop_event.is_set():
            try:
                result = self.poll_once()
            except ConnectorError as exc:
                failures += 1
                log.warning("%s: poll failed: %s", self.name, exc)
                if on_error:
                    on_error(exc)
                delay = min(interval * 2 ** min(failures, 16), MAX_BACKOFF_SECONDS)
            else:
                failures = 0
                if on_poll:
                    on_poll(result)
                delay = 0.0 if result.more else interval
            stop_event.wait(delay)


class HttpConnector(Connector):
    """A pull connector over HTTP(S) (``socflow.http``) with a persisted cursor."""

    fmt = "generic"

    def __init__(
        self,
        url: str,
        ingest: IngestFn,
        *,
        name: str,
        cursors: CursorStore | None = None,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        ca_bundle: str | None = None,
        source: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        dead_letter: DeadLetterFn | None = None,
        fmt: str | None = None,
    ) -> None:
        """``dead_letter`` keeps refused items (``IngestService.refuse``; without it they are only logged
        and counted). ``fmt``: the alert format of the pulled documents (default: the connector's vendor
        format; ``auto`` or another ingest format for an index or search holding other alerts)."""
        if not url:
            raise InputError("a URL is required", field="url")
        self.url = url.rstrip("/")
        self.ingest = ingest
        self.name = name
        self.cursors: CursorStore = cursors if cursors is not None else MemoryCursorStore()
        self.source = source
        self.dead_letter = dead_letter
        if fmt is not None:
            if fmt != "auto" and fmt not in FORMATS:
                raise InputError(f"unknown format {fmt!r}", field="format")
            self.fmt = fmt
        if isinstance(verify, str):  # a CA bundle path passed as verify (older callers)
            ca_bundle, verify = ca_bundle or verify, True
        auth = HttpAuth(
            username=username or "",
            password=password or "",
            api_key=api_key or "",
            bearer_token=bearer_token or "",
            verify=verify,
            ca_bundle=ca_bundle or "",
        )
        self.http = HttpClient(
            self.url,
            name=name,
            auth=auth,
            timeout=timeout,
            retry=retry or RetryPolicy(attempts=2),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HttpConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def letter_source(self) -> str | None:
        """The source named on this connector's dead letters."""
        return self.source or DEFAULT_SOURCES.get(self.fmt)

    def submit_page(
        self, page: Sequence[PageItem], docs: Sequence[dict[str, Any]] | None = None
    ) -> PollResult:
        """Hand a page's readable items to ingest and its refused ones to ``dead_letter``.

        ``docs`` (default each item's cleaned ``doc``) are what is normalized, in the order of the
        page's readable items."""
        good = [p for p in page if p.refusal is None and p.doc is not None]
        refused = [(p.label, p.refusal) for p in page if p.refusal is not None]
        return submit(
            list(docs) if docs is not None else [p.doc for p in good if p.doc is not None],
            self.ingest,
            fmt=self.fmt,
            source=self.source,
            labels=[p.label for p in good],
            refused=refused,
            dead_letter=self.dead_letter,
        )

    def _redact(self, text: str) -> str:
        return self.http.redact(text)

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.post(path, **kwargs)
        except RemoteError as exc:
            raise connector_error(exc) from None


def connector_error(exc: RemoteError) -> ConnectorError:
    """The connector error for a failed HTTP exchange (``ConnectorHTTPError`` when the remote answered)."""
    if exc.status_code:
        return ConnectorHTTPError(str(exc), status_code=exc.status_code)
    return ConnectorError(str(exc))
