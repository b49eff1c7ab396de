"""Every door triages: a storm of 50 alerts from 2 incidents, sent through each door (the API,
``socflow ingest``, ``socflow connector run``, ``socflow siem detect --ingest``, the Celery ingest task),
becomes 2 cases and 2 runs that a real Celery worker advances to the analyst's approval -- nobody runs
``socflow runs process`` and no sweeper runs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.tables import Case, WorkflowRun
from tests.api.conftest import bearer, make_token
from tests.conftest import REPO_ROOT
from tests.workers.conftest import Fleet, RedisServer, run_counts, settings_env, wait_for, worker_settings
from workers.config import celery_for
from workers.routing import INGEST, INGEST_TASK, WORKFLOWS

pytestmark = [
    pytest.mark.celery,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]

PER_INCIDENT = 25
SAMPLES = REPO_ROOT / "socflow" / "samples" / "events"
RULES = """title: Door test {name}
id: {uuid}
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\\\{image}'
    condition: selection
level: high
tags:
    - attack.execution
"""


def storm() -> list[dict[str, Any]]:
    """50 alerts: 25 of incident A (one rule, host, user), 25 of incident B."""
    out = []
    for incident, host, user in (("A", "WS-A", "alice"), ("B", "WS-B", "bob")):
        for i in range(PER_INCIDENT):
            out.append(
                {
                    "source": "door-test",
                    "source_ref": f"{incident}-{i}",
                    "title": f"Incident {incident}",
                    "severity": "high",
                    "rule": {"id": f"rule-{incident}", "tags": ["attack.t1059.001"]},
                    "entities": {"hosts": [host], "users": [user]},
                }
            )
    return out


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "socflow", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def door_api(settings: Any, env: dict[str, str], tmp: Path) -> None:
    from socflow.api import create_app

    token = make_token(settings.database.url, Role.ingest)
    with TestClient(create_app(settings)) as client:  # the broker is configured: Celery dispatch
        body = "\n".join(json.dumps(a) for a in storm())
        r = client.post(
            "/api/v1/alerts",
            content=body,
            headers={**bearer(token), "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code in (200, 201, 202), r.text


def door_cli_ingest(settings: Any, env: dict[str, str], tmp: Path) -> None:
    path = tmp / "storm.ndjson"
    path.write_text("\n".join(json.dumps(a) for a in storm()) + "\n")
    out = _run(env, "ingest", str(path))
    assert "50 accepted" in out.stdout and "sent to the workers" in out.stdout, out.stdout


def door_connector(settings: Any, env: dict[str, str], tmp: Path) -> None:
    drop = tmp / "drop"
    drop.mkdir()
    (drop / "storm.ndjson").write_text("\n".join(json.dumps(a) for a in storm()) + "\n")
    out = _run(env, "connector", "run", "folder", "--path", str(drop), "--once", "--settle", "0")
    assert "accepted=50" in out.stdout, out.stdout


def door_siem_detect(settings: Any, env: dict[str, str], tmp: Path) -> None:
    from tools.siem.embedded import EmbeddedSiem

    rules, events = tmp / "rules", tmp / "events"
    rules.mkdir()
    events.mkdir()
    for n, (name, image, sample) in enumerate(
        (
            ("A", "findstr.exe", "proc_creation_win_findstr_lsass.json"),
            ("B", "certutil.exe", "proc_creation_win_certutil_download.json"),
        )
    ):
        uuid = f"00000000-0000-4000-8000-00000000000{n}"
        (rules / f"door_{name}.yml").write_text(RULES.format(name=name, uuid=uuid, image=image))
        base = json.loads((SAMPLES / sample).read_text())
        for i in range(PER_INCIDENT):  # one alert per (rule, host): 25 hosts per rule
            event = copy.deepcopy(base)
            event["Event"]["System"]["Computer"] = f"ws-{name.lower()}-{i:02d}.corp.local"
            event["Event"]["System"]["EventRecordID"] = 1000 * (n + 1) + i
            (events / f"{name}-{i:02d}.json").write_text(json.dumps(event))
    store = tmp / "detect-siem.db"  # the worker's SIEM stays absent: this test is about the door
    with EmbeddedSiem(store) as siem:
        assert siem.load([events]).loaded == 2 * PER_INCIDENT
    env = {**env, "SOCFLOW_GROUPING__KEY_FIELDS": '["rule"]'}  # an incident = one rule across hosts
    out = _run(env, "siem", "detect", "--ingest", "--rules", str(rules), "--siem-path", str(store))
    assert "ingested: 50 new" in out.stderr and "2 triage runs sent to the workers" in out.stderr, out.stderr


def door_celery_task(settings: Any, env: dict[str, str], tmp: Path) -> None:
    client = celery_for(settings)
    try:
        client.send_task(INGEST_TASK, args=["\n".join(json.dumps(a) for a in storm()), "soar"], queue=INGEST)
    finally:
        client.close()


DOORS = {
    "api": door_api,
    "cli_ingest": door_cli_ingest,
    "connector": door_connector,
    "siem_detect": door_siem_detect,
    "celery_task": door_celery_task,
}


@pytest.mark.timeout(420)
@pytest.mark.parametrize("door", list(DOORS))
def test_a_storm_through_each_door_is_triaged_by_a_worker(
    door: str, pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    settings = worker_settings(pg_url, redis_server.url, tmp_path)
    fleet.env = settings_env(settings)
    fleet.worker("w1", "--queues", f"{INGEST},{WORKFLOWS}", "--pool", "threads", "--concurrency", "2")
    DOORS[door](settings, fleet.env, tmp_path)

    def approved() -> bool:
        fleet.alive()
        counts = run_counts(settings)
        return counts.get("awaiting_input", 0) >= 2 or counts.get("failed", 0) > 0

    wait_for(approved, 300, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=1.0)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        cases = dict(s.execute(select(Case.status, func.count()).group_by(Case.status)).all())
        runs = s.scalar(select(func.count(WorkflowRun.id)))
    engine.dispose()
    assert run_counts(settings) == {"awaiting_input": 2}, fleet.logs()
    assert (cases, runs) == ({"awaiting_approval": 2}, 2)
