"""Elastic and Splunk backends against a real local HTTP server that asserts method, path and body.

The expected query texts below are written by hand from pySigma's documented output conventions (Splunk:
``field="value"`` terms joined by spaces, lists as ``IN (...)``, ``*`` wildcards, ``\\`` escaped, Windows
``service`` -> ``source="WinEventLog:<Channel>"`` and ``EventID`` -> ``EventCode``; Lucene with the ECS
Windows pipeline: ``field:value`` joined by ``AND``/``OR``, special characters backslash-escaped,
``Image`` -> ``process.executable`` with its ``.caseless`` sub-field for wildcard matches, ``EventID`` ->
``event.code``, ``service: security`` -> ``winlog.channel:Security``), not snapshotted from our code.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from socflow.errors import SiemError
from socflow.settings import SiemSettings
from tests.servers.siem_http import fake_siem_server
from tools.siem import ElasticSiem, EntityQuery, SplunkSiem, build_siem, sigma_to_lucene, sigma_to_spl
from tools.siem.models import BackendKind

RULE_WHOAMI = r"""
title: Whoami All
id: 11111111-1111-4111-8111-111111111111
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\whoami.exe'
        CommandLine|contains: '/all'
    condition: sel
"""
RULE_LOGON = """
title: Failed Network Logon
id: 22222222-2222-4222-8222-222222222222
logsource: {product: windows, service: security}
detection:
    sel:
        EventID: 4625
        LogonType: 3
    condition: sel
"""
RULE_LIST_NOT = r"""
title: A or B not from X
id: 33333333-3333-4333-8333-333333333333
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: ['\a.exe', '\b.exe']
    filter:
        ParentImage: 'C:\x.exe'
    condition: sel and not filter
"""

HAND_WRITTEN_SPL = {
    RULE_WHOAMI: 'Image="*\\\\whoami.exe" CommandLine="*/all*"',
    RULE_LOGON: 'source="WinEventLog:Security" EventCode=4625 LogonType=3',
    RULE_LIST_NOT: 'Image IN ("*\\\\a.exe", "*\\\\b.exe") NOT ParentImage="C:\\\\x.exe"',
}
HAND_WRITTEN_LUCENE = {
    RULE_WHOAMI: "process.executable.caseless:*\\\\whoami.exe AND process.command_line:*\\/all*",
    RULE_LOGON: "winlog.channel:Security AND (event.code:4625 AND winlog.event_data.LogonType:3)",
    RULE_LIST_NOT: (
        "(process.executable.caseless:(*\\\\a.exe OR *\\\\b.exe)) AND "
        "(NOT process.parent.executable.caseless:C\\:\\\\x.exe)"
    ),
}

ES_RESPONSE = {
    "took": 4,
    "timed_out": False,
    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {
        "total": {"value": 1, "relation": "eq"},
        "max_score": None,
        "hits": [
            {
                "_index": ".ds-logs-windows.sysmon_operational-default-2025.03.01-000001",
                "_id": "kX3bT5UBa1",
                "_score": None,
                "_source": {
                    "@timestamp": "2025-03-01T12:00:00.000Z",
                    "host": {"name": "WS1"},
                    "user": {"name": "alice", "domain": "CORP"},
                    "process": {
                        "name": "whoami.exe",
                        "executable": "C:\\Windows\\System32\\whoami.exe",
                        "command_line": "whoami /all",
                    },
                    "event": {"code": "1", "category": ["process"]},
                    "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational"},
                },
                "sort": [1740830400000],
            }
        ],
    },
}
SPLUNK_EXPORT = (
    '{"preview":false,"offset":0,"result":{"_bkt":"main~12~9F1B","_cd":"12:3456","_time":'
    '"2025-03-01T12:00:00.000+00:00","_raw":"<Event>...</Event>","host":"WS1","index":"main",'
    '"source":"WinEventLog:Security","sourcetype":"WinEventLog","EventCode":"4688","user":"alice",'
    '"process_name":"whoami.exe","CommandLine":"whoami /all","src_ip":"10.0.0.5"}}\n'
    '{"preview":false,"offset":1,"lastrow":true,"result":{"_bkt":"main~12~9F1B","_cd":"12:3457",'
    '"_time":"2025-03-01T12:05:00.000+00:00","host":"WS1","EventCode":"4624","user":"alice"}}\n'
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("rule", list(HAND_WRITTEN_SPL))
def test_sigma_to_spl_matches_hand_written_query(rule: str) -> None:
    assert sigma_to_spl(rule) == HAND_WRITTEN_SPL[rule]


@pytest.mark.parametrize("rule", list(HAND_WRITTEN_LUCENE))
def test_sigma_to_lucene_matches_hand_written_query(rule: str) -> None:
    assert sigma_to_lucene(rule) == HAND_WRITTEN_LUCENE[rule]


def test_elastic_entity_search_and_hunt() -> None:
    with fake_siem_server() as server:
        server.route("POST", "/logs-windows-*/_search", ES_RESPONSE)
        settings = SiemSettings(
            backend="elastic", url=server.url, index="logs-windows-*", username="elastic", password="pw"
        )
        siem = build_siem(settings)
        assert isinstance(siem, ElasticSiem)
        events = siem.search(EntityQuery(host="WS1", user="alice", since=T0, until=T1, limit=10))
        hunted = siem.hunt(RULE_WHOAMI, limit=5)
        siem.close()
    search, hunt = server.requests
    assert (search.method, search.path) == ("POST", "/logs-windows-*/_search")
    assert search.headers["Authorization"] == "Basic " + base64.b64encode(b"elastic:pw").decode()
    assert search.json() == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"host.name": {"value": "WS1", "case_insensitive": True}}},
                    {"term": {"user.name": {"value": "alice", "case_insensitive": True}}},
                    {
                        "range": {
                            "@timestamp": {
                                "gte": "2025-03-01T12:00:00.000000Z",
                                "lte": "2025-03-01T13:00:00.000000Z",
                            }
                        }
                    },
                ]
            }
        },
        "size": 10,
        "sort": [{"@timestamp": {"order": "asc"}}],
    }
    assert hunt.json() == {
        "query": {
            "bool": {
                "must": [
                    {"query_string": {"query": HAND_WRITTEN_LUCENE[RULE_WHOAMI], "analyze_wildcard": True}}
                ]
            }
        },
        "size": 5,
        "sort": [{"@timestamp": {"order": "asc"}}],
    }
    (event,) = events
    assert event.backend == BackendKind.ELASTIC
    assert event.event_id == ".ds-logs-windows.sysmon_operational-default-2025.03.01-000001/kX3bT5UBa1"
    assert (event.host, event.user, event.process, event.command_line) == (
        "WS1",
        "alice",
        "whoami.exe",
        "whoami /all",
    )
    assert event.timestamp == "2025-03-01T12:00:00.000000Z" and event.event_code == "1"
    assert hunted == events
    assert event.to_evidence("c1")["backend"] == "elastic"


def test_splunk_entity_search_and_hunt() -> None:
    with fake_siem_server() as server:
        server.route("POST", "/services/search/jobs/export", SPLUNK_EXPORT)
        siem = build_siem(
            SiemSettings(backend="splunk", url=server.url, index="main", username="u", password="p")
        )
        assert isinstance(siem, SplunkSiem)
        events = siem.search(EntityQuery(host="WS1", ip="10.0.0.5", since=T0, until=T1, limit=20))
        siem.hunt(RULE_LOGON, limit=7)
        siem.close()
    search, hunt = server.requests
    assert (search.method, search.path) == ("POST", "/services/search/jobs/export")
    assert search.form() == {
        "search": (
            'search index="main" host="WS1" (src="10.0.0.5" OR dest="10.0.0.5") | sort 0 _time | head 20'
        ),
        "output_mode": "json",
        "earliest_time": "2025-03-01T12:00:00.000000Z",
        "latest_time": "2025-03-01T13:00:00.000000Z",
    }
    assert hunt.form() == {
        "search": f'search index="main" {HAND_WRITTEN_SPL[RULE_LOGON]} | head 7',
        "output_mode": "json",
    }
    first, second = events
    assert first.backend == BackendKind.SPLUNK and first.event_id == "main~12~9F1B:12:3456"
    assert (first.host, first.user, first.process, first.source_ip) == (
        "WS1",
        "alice",
        "whoami.exe",
        "10.0.0.5",
    )
    assert first.timestamp == "2025-03-01T12:00:00.000000Z" and first.event_code == "4688"
    assert second.event_code == "4624" and first.id != second.id


def test_http_errors_and_missing_url_are_siem_errors() -> None:
    with fake_siem_server() as server:
        server.route("POST", "/logs-*/_search", {"error": "boom"}, status=500)
        siem = ElasticSiem(server.url)
        with pytest.raises(SiemError, match="HTTP 500"):
            siem.search(EntityQuery(host="x"))
        siem.close()
    with pytest.raises(SiemError, match="URL"):
        build_siem(SiemSettings(backend="splunk", url=""))
