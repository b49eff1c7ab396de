"""The MISP provider against a local HTTP test double of /attributes/restSearch (no real MISP here)."""

from __future__ import annotations

import pytest

from socflow.http import RemoteHTTPError
from socflow.settings import IntelSettings
from socflow.wiring import build_misp
from tests.intel.misp_double import MispTestDouble, serve_misp_double
from tools.intel.indicators import IndicatorType
from tools.intel.misp import MispConfig, MispProvider, RateLimited

KEY = "misp-automation-key-for-tests"
ATTRIBUTES = [
    {
        "id": "77",
        "type": "ip-dst",
        "category": "Network activity",
        "to_ids": True,
        "uuid": "aa6e3e1a-0001-4c3a-8d3b-2a1f0e9b7c11",
        "value": "203.0.113.77",
        "comment": "C2",
        "Event": {"id": "9", "info": "Campaign X", "threat_level_id": "2"},
    },
    {
        "id": "78",
        "type": "ip-dst",
        "category": "Network activity",
        "to_ids": False,
        "uuid": "aa6e3e1a-0002-4c3a-8d3b-2a1f0e9b7c11",
        "value": "203.0.113.78",
        "Event": {"id": "9", "info": "Campaign X", "threat_level_id": "2"},
    },
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_off_by_default() -> None:
    assert build_misp(IntelSettings()) is None
    assert build_misp(IntelSettings(misp_url="http://127.0.0.1:1")) is None  # no key: still off


def test_lookup_sends_the_documented_request_and_caches() -> None:
    clock = Clock()
    with serve_misp_double(MispTestDouble(KEY, ATTRIBUTES)) as double:
        misp = MispProvider(MispConfig(url=double.url, api_key=KEY, cache_ttl_seconds=60), clock=clock)
        found = misp.lookup(IndicatorType.ip, "203.0.113.77")
        assert [(i.value, i.source, i.confidence) for i in found] == [("203.0.113.77", "misp", 60)]
        assert found[0].description == "Campaign X - C2"
        request = double.requests[0]
        assert request["path"] == "/attributes/restSearch" and request["authorization"] == KEY
        assert request["body"]["value"] == "203.0.113.77" and request["body"]["returnFormat"] == "json"
        assert "ip-dst" in request["body"]["type"] and request["body"]["to_ids"] is True
        assert misp.lookup(IndicatorType.ip, "203.0.113.77") == found  # cached: no second request
        assert misp.lookup(IndicatorType.ip, "203.0.113.78") == []  # not to_ids
        assert len(double.requests) == 2
        clock.now += 61  # the cache entry expired
        misp.lookup(IndicatorType.ip, "203.0.113.77")
        assert len(double.requests) == 3
        misp.close()


def test_rate_limit_refuses_without_sending() -> None:
    clock = Clock()
    with serve_misp_double(MispTestDouble(KEY, ATTRIBUTES)) as double:
        misp = MispProvider(MispConfig(url=double.url, api_key=KEY, max_requests_per_minute=2), clock=clock)
        misp.lookup(IndicatorType.ip, "192.0.2.1")
        misp.lookup(IndicatorType.ip, "192.0.2.2")
        with pytest.raises(RateLimited):
            misp.lookup(IndicatorType.ip, "192.0.2.3")
        assert len(double.requests) == 2
        clock.now += 60.5  # a minute later the budget is back
        misp.lookup(IndicatorType.ip, "192.0.2.3")
        assert len(double.requests) == 3


def test_a_wrong_key_is_an_error_that_never_shows_the_key() -> None:
    with serve_misp_double(MispTestDouble(KEY, ATTRIBUTES)) as double:
        misp = MispProvider(MispConfig(url=double.url, api_key="wrong-key-123"))
        with pytest.raises(RemoteHTTPError) as info:
            misp.lookup(IndicatorType.ip, "203.0.113.77")
        assert info.value.status_code == 403 and "wrong-key-123" not in str(info.value)


def test_evidence_provider_adds_misp_matches_and_survives_a_down_misp(sqlite_url: str) -> None:
    from socflow.db import make_engine, session_factory
    from socflow.evidence import CaseContext
    from socflow.testing import CaseFactory, alert
    from tools.intel.evidence import IntelEvidence

    factory = session_factory(make_engine(sqlite_url))
    case_id = CaseFactory(factory).case(alert("Beacon", hosts=["WS1"], ips=["203.0.113.77", "10.0.0.1"]))
    context = CaseContext(case_id=case_id)
    with serve_misp_double(MispTestDouble(KEY, ATTRIBUTES)) as double:
        misp = MispProvider(MispConfig(url=double.url, api_key=KEY))
        items = IntelEvidence(factory, misp=misp).evidence(context, limit=10)
        assert [(i.kind, i.backend, i.data["value"], i.data["sources"]) for i in items] == [
            ("threat_intel", "misp", "203.0.113.77", ["misp"])
        ]
        assert "Campaign X - C2" in items[0].summary and items[0].data["max_confidence"] == 60
        assert {r["body"]["value"] for r in double.requests} == {"203.0.113.77", "10.0.0.1"}
        down = MispProvider(MispConfig(url=double.url, api_key="revoked-key"))
        assert IntelEvidence(factory, misp=down).evidence(context, limit=10) == []  # logged, not raised
