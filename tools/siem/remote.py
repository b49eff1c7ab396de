"""Remote backends: Elasticsearch/OpenSearch (``_search`` with Lucene ``query_string``) and Splunk
(``search/jobs/export``, SPL), over socflow's one HTTP client layer (``socflow.http``: basic, API-key or
bearer auth, TLS verify and CA bundle, timeouts, retries with backoff on connection errors/429/5xx,
secrets redacted from errors).

Sigma rules are translated with pySigma's backends (Lucene + the ``ecs_windows`` pipeline; SPL + the Splunk
Windows pipeline); entity queries become an Elastic ``bool`` filter or an SPL search. Both parse their
responses into :class:`SiemEvent`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from sigma.backends.elasticsearch import LuceneBackend
from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.pipelines.elasticsearch.windows import ecs_windows
from sigma.pipelines.splunk import splunk_windows_pipeline
from sigma.rule import SigmaRule

from socflow.errors import SiemError, SigmaConversionError
from socflow.http import HttpAuth, HttpClient, RemoteError, RetryPolicy, export_rows, search_hits, spl_quote
from tools.siem.models import BackendKind, EntityQuery, SiemEvent, content_event_id
from tools.siem.normalize import iso_utc, parse_timestamp


def _rule_text(rule: SigmaRule | str) -> SigmaCollection:
    """A fresh collection per conversion: pySigma pipelines transform the rule in place."""
    if isinstance(rule, str):
        return SigmaCollection.from_yaml(rule)
    return SigmaCollection.from_dicts([rule.to_dict()])


def _convert(rule: SigmaRule | str, convert: Callable[[SigmaCollection], Any]) -> str:
    try:
        queries = convert(_rule_text(rule))
    except SigmaError as exc:
        raise SigmaConversionError(f"cannot convert Sigma rule: {exc}") from exc
    if len(queries) != 1 or not isinstance(queries[0], str):
        raise SigmaConversionError(f"expected one query, got {len(queries)}")
    return queries[0]


def sigma_to_lucene(rule: SigmaRule | str) -> str:
    """Lucene query text (ECS field names) for a Sigma rule, from pySigma's Elasticsearch backend."""
    return _convert(rule, lambda c: LuceneBackend(ecs_windows()).convert(c))


def sigma_to_spl(rule: SigmaRule | str) -> str:
    """SPL search text for a Sigma rule, from pySigma's Splunk backend."""
    return _convert(rule, lambda c: SplunkBackend(splunk_windows_pipeline()).convert(c))  # type: ignore[no-untyped-call]


def _dig(source: dict[str, Any], dotted: str) -> Any:
    """``host.name`` from a flat ``{"host.name": ..}`` or nested ``{"host": {"name": ..}}`` document."""
    if dotted in source:
        return source[dotted]
    node: Any = source
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _str(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value)


def _stamp(value: Any) -> str | None:
    parsed = parse_timestamp(value)
    return iso_utc(parsed) if parsed else None


class _HttpBackend:
    kind: BackendKind

    def __init__(
        self,
        url: str,
        *,
        index: str = "logs-*",
        username: str = "",
        password: str = "",
        api_key: str = "",
        token: str = "",
        verify: bool = True,
        ca_bundle: str = "",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url:
            raise SiemError(f"{self.kind.value} backend needs a URL (SOCFLOW_SIEM__URL)")
        auth = HttpAuth(
            username=username,
            password=password,
            api_key=api_key,
            bearer_token=token,
            verify=verify,
            ca_bundle=ca_bundle,
        )
        self.index = index
        self.http = HttpClient(
            url, name=self.kind.value, auth=auth, timeout=timeout, retry=retry, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> _HttpBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.post(path, **kwargs)
        except RemoteError as exc:
            raise SiemError(str(exc)) from None


class ElasticSiem(_HttpBackend):
    """Elasticsearch / OpenSearch over ``POST /<index>/_search``."""

    kind = BackendKind.ELASTIC

    def __init__(self, url: str, *, kind: BackendKind = BackendKind.ELASTIC, **options: Any) -> None:
        self.kind = kind
        super().__init__(url, **options)

    @staticmethod
    def entity_body(query: EntityQuery) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        for field_name, value in (
            ("host.name", query.host),
            ("user.name", query.user),
            ("process.name", query.process),
        ):
            if value:
                filters.append({"term": {field_name: {"value": value, "case_insensitive": True}}})
        if query.ip:
            filters.append(
                {
                    "bool": {
                        "should": [{"term": {"source.ip": query.ip}}, {"term": {"destination.ip": query.ip}}],
                        "minimum_should_match": 1,
                    }
                }
            )
        if query.hash:
            filters.append(
                {"multi_match": {"query": query.hash, "fields": ["process.hash.*", "file.hash.*"]}}
            )
        time_range = ElasticSiem._range(query.since, query.until)
        if time_range:
            filters.append(time_range)
        return {
            "query": {"bool": {"filter": filters}},
            "size": query.limit,
            "sort": [{"@timestamp": {"order": "asc"}}],
        }

    @staticmethod
    def _range(since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
        bounds: dict[str, str] = {}
        if since:
            bounds["gte"] = iso_utc(since)
        if until:
            bounds["lte"] = iso_utc(until)
        return {"range": {"@timestamp": bounds}} if bounds else None

    @staticmethod
    def hunt_body(lucene: str, limit: int) -> dict[str, Any]:
        return {
            "query": {"bool": {"must": [{"query_string": {"query": lucene, "analyze_wildcard": True}}]}},
            "size": limit,
            "sort": [{"@timestamp": {"order": "asc"}}],
        }

    def _search(self, body: dict[str, Any]) -> list[SiemEvent]:
        response = self._post(f"/{self.index}/_search", json=body)
        try:
            hits = search_hits(response.json(), name=self.kind.value)
        except (ValueError, RemoteError) as exc:
            raise SiemError(f"{self.kind.value}: _search response has no hits.hits") from exc
        return [self.parse_hit(hit) for hit in hits]

    def parse_hit(self, hit: dict[str, Any]) -> SiemEvent:
        source = hit.get("_source") or {}
        return SiemEvent(
            backend=self.kind,
            event_id=f"{hit.get('_index', '')}/{hit.get('_id') or content_event_id(source)}",
            timestamp=_stamp(_dig(source, "@timestamp")),
            host=_str(_dig(source, "host.name")),
            user=_str(_dig(source, "user.name")),
            source_ip=_str(_dig(source, "source.ip")),
            destination_ip=_str(_dig(source, "destination.ip")),
            process=_str(_dig(source, "process.name")),
            command_line=_str(_dig(source, "process.command_line")),
            event_code=_str(_dig(source, "event.code")),
            channel=_str(_dig(source, "winlog.channel")),
            raw=source,
        )

    def search(self, query: EntityQuery) -> list[SiemEvent]:
        return self._search(self.entity_body(query))

    def hunt(self, rule: SigmaRule | str, *, limit: int = 100) -> list[SiemEvent]:
        return self._search(self.hunt_body(sigma_to_lucene(rule), limit))


class SplunkSiem(_HttpBackend):
    """Splunk over ``POST /services/search/jobs/export`` (streamed JSON results)."""

    kind = BackendKind.SPLUNK
    EXPORT_PATH = "/services/search/jobs/export"

    def entity_spl(self, query: EntityQuery) -> str:
        terms = [f"index={spl_quote(self.index)}"]
        for field_name, value in (
            ("host", query.host),
            ("user", query.user),
            ("process_name", query.process),
        ):
            if value:
                terms.append(f"{field_name}={spl_quote(value)}")
        if query.ip:
            terms.append(f"(src={spl_quote(query.ip)} OR dest={spl_quote(query.ip)})")
        if query.hash:
            terms.append(spl_quote(query.hash))
        return f"search {' '.join(terms)} | sort 0 _time | head {query.limit}"

    def hunt_spl(self, spl: str, limit: int) -> str:
        return f"search index={spl_quote(self.index)} {spl} | head {limit}"

    def _export(
        self, search: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[SiemEvent]:
        form = {"search": search, "output_mode": "json"}
        if since:
            form["earliest_time"] = iso_utc(since)
        if until:
            form["latest_time"] = iso_utc(until)
        response = self._post(self.EXPORT_PATH, data=form)
        try:
            rows = export_rows(response.text, name="splunk")
        except RemoteError as exc:
            raise SiemError(str(exc)) from exc
        return [self.parse_result(row) for row in rows]

    def parse_result(self, result: dict[str, Any]) -> SiemEvent:
        def first(*names: str) -> str | None:
            for name in names:
                value = _str(result.get(name))
                if value:
                    return value
            return None

        ident = first("_cd")
        return SiemEvent(
            backend=self.kind,
            event_id=f"{result.get('_bkt', '')}:{ident}" if ident else content_event_id(result),
            timestamp=_stamp(result.get("_time")),
            host=first("host", "Computer", "ComputerName"),
            user=first("user", "User", "TargetUserName"),
            source_ip=first("src_ip", "src", "IpAddress", "SourceIp"),
            destination_ip=first("dest_ip", "dest", "DestinationIp"),
            process=first("process_name", "Image", "NewProcessName"),
            command_line=first("CommandLine", "process"),
            event_code=first("EventCode", "EventID"),
            channel=first("LogName", "Channel"),
            raw=result,
        )

    def search(self, query: EntityQuery) -> list[SiemEvent]:
        return self._export(self.entity_spl(query), query.since, query.until)

    def hunt(self, rule: SigmaRule | str, *, limit: int = 100) -> list[SiemEvent]:
        return self._export(self.hunt_spl(sigma_to_spl(rule), limit))
