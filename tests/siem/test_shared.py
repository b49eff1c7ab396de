"""The composition's SIEM: one embedded store connection per thread, opened once the store exists."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from socflow.errors import SiemError
from socflow.evidence import CaseContext
from socflow.settings import SiemSettings
from socflow.wiring import build_evidence_providers, build_siem
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import EntityQuery

EVENT = {"@timestamp": "2025-04-09T10:05:10Z", "host.name": "WS1", "user.name": "alice", "event.code": "4688"}


def test_the_siem_is_used_from_any_thread_and_found_once_loaded(tmp_path: Path) -> None:
    path = tmp_path / "siem.db"
    siem = build_siem(SiemSettings(path=path))
    provider = build_evidence_providers(siem)[0]
    with pytest.raises(SiemError):
        siem.search(EntityQuery(host="WS1"))
    assert provider.evidence(CaseContext(case_id=1, hosts=("WS1",)), limit=5) == []  # no store: no evidence
    assert not path.exists()
    with EmbeddedSiem(path) as store:  # socflow siem load, while the process runs
        assert store.insert_events([EVENT]) == (1, 0)
    found: dict[str, int] = {}

    def look(name: str) -> None:
        found[name] = len(siem.search(EntityQuery(host="WS1")))

    threads = [threading.Thread(target=look, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    look("main")
    assert found == {"t0": 1, "t1": 1, "t2": 1, "main": 1}  # SQLite connections are per thread
    evidence = provider.evidence(CaseContext(case_id=7, hosts=("WS1",)), limit=5)
    assert len(evidence) == 1 and evidence[0].kind == "siem_event"
    again = provider.evidence(CaseContext(case_id=7, hosts=("WS1",)), limit=5)
    assert again[0].evidence_id == evidence[0].evidence_id  # stable ids: a re-run stores nothing twice
    siem.close()
