"""``socflow serve`` with no broker, as a real process on SQLite: one composition per process (the model
loads once for every run it serves), and orphaned runs resumed on its own after a SIGKILL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.settings import Settings
from socflow.tables import Approval, AuditEvent, CaseTechnique, Evidence, ModelCall, Note, WorkflowRun
from socflow.wiring import build_services
from tests.api.conftest import make_token
from tests.core.embedded_server import ServeProcess, start_serve

pytestmark = [pytest.mark.slow]


def _alert(i: int) -> dict[str, object]:
    return {
        "source": "edr",
        "source_ref": f"emb-{i}",
        "title": f"Encoded PowerShell on WS{i}",
        "severity": "high",
        "rule": {"id": f"rule-{i}", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [f"WS{i}"], "users": [f"user{i}"]},
    }


def _runs(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            return {r.id: r.status for r in s.scalars(select(WorkflowRun))}
    finally:
        engine.dispose()


def _wait(pred: Callable[[], bool], timeout: float, server: ServeProcess, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if server.proc.poll() is not None:
            pytest.fail(f"socflow serve exited while waiting for {what}:\n{server.output()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{server.output()[-4000:]}")
        time.sleep(0.2)


def _post_alerts(server: ServeProcess, token: str, alerts: list[dict[str, object]]) -> None:
    r = httpx.post(
        f"{server.base}/api/v1/alerts",
        content="\n".join(json.dumps(a) for a in alerts),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/x-ndjson"},
        timeout=30,
    )
    assert r.status_code in (200, 201, 202), r.text


def _env(db_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "SOCFLOW_DATABASE__URL": db_url,
        "SOCFLOW_BROKER__URL": "",
        "SOCFLOW_SIEM__PATH": str(tmp / "siem.db"),
        "SOCFLOW_WORKER__SWEEP_INTERVAL_SECONDS": "1",
        "SOCFLOW_WORKER__SWEEP_GRACE_SECONDS": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


@pytest.mark.model
@pytest.mark.timeout(600)
def test_serve_without_a_broker_loads_the_model_once_for_all_its_runs(
    sqlite_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from socflow.model.tiny import build_tiny_llama

    model_dir = build_tiny_llama(tmp_path / "tiny", seed=3)
    # two runs queued before the server starts (its sweeper takes them), two sent to it over HTTP
    before = build_services(
        Settings(database={"url": sqlite_url}, model={"backend": "none"}, siem={"path": tmp_path / "s.db"}),
        dispatcher="null",
    )
    report = before.ingest.ingest_text("\n".join(json.dumps(_alert(i)) for i in (1, 2)), actor="test")
    before.close()
    assert len(report.runs_queued) == 2
    token = make_token(sqlite_url, Role.ingest)
    env = _env(
        sqlite_url,
        tmp_path,
        SOCFLOW_MODEL__BACKEND="transformers",
        SOCFLOW_MODEL__NAME=str(model_dir),
        SOCFLOW_MODEL__DEVICE="cpu",
        SOCFLOW_MODEL__MAX_NEW_TOKENS="16",
    )
    server = start_serve(env, tmp_path / "serve.log")
    try:
        _post_alerts(server, token, [_alert(3), _alert(4)])
        _wait(
            lambda: (
                len(runs := _runs(sqlite_url)) == 4
                and all(s not in ("queued", "running") for s in runs.values())
            ),
            420,
            server,
            "four runs to reach the analyst",
        )
    finally:
        server.stop()
    runs = _runs(sqlite_url)
    assert sorted(runs.values()) == ["awaiting_input"] * 4, server.output()[-4000:]
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        called = set(s.scalars(select(ModelCall.run_id).where(ModelCall.backend == "transformers")))
    engine.dispose()
    assert called == set(runs)  # every run asked the model
    loads = [line for line in server.output().splitlines() if f"model {model_dir} loaded" in line]
    assert len(loads) == 1, server.output()[-4000:]


@pytest.mark.timeout(300)
def test_a_killed_server_resumes_its_in_flight_and_queued_runs_on_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    block = tmp_path / "block"
    block.touch()
    ingest = make_token(sqlite_url, Role.ingest)
    analyst = make_token(sqlite_url, Role.analyst)
    env = _env(
        sqlite_url,
        tmp_path,
        SOCFLOW_MODEL__BACKEND="scripted",
        SOCFLOW_WORKER__RUN_LEASE_SECONDS="3",
        SOCFLOW_TEST_BLOCK_FILE=str(block),
    )
    app = ("--app", "tests.core.scripted_serve:create")
    server = start_serve(env, tmp_path / "serve-1.log", *app)
    try:
        _post_alerts(server, ingest, [_alert(i) for i in (1, 2, 3)])
        _wait(
            lambda: sorted(_runs(sqlite_url).values()) == ["queued", "queued", "running"],
            60,
            server,
            "one run in flight (blocked in assess_case) and two queued",
        )
        time.sleep(0.5)  # the blocked run is inside the model call, past its first nodes' writes
        assert sorted(_runs(sqlite_url).values()) == ["queued", "queued", "running"]
    finally:
        server.kill()
    block.unlink()

    server = start_serve(env, tmp_path / "serve-2.log", *app)  # no manual command: the server recovers
    try:
        _wait(
            lambda: sorted(_runs(sqlite_url).values()) == ["awaiting_input"] * 3,
            120,
            server,
            "all three runs to reach the analyst after the restart",
        )
        engine = make_engine(sqlite_url)
        with session_factory(engine)() as s:
            case_ids = sorted(s.scalars(select(WorkflowRun.case_id)))
        for case_id in case_ids:
            r = httpx.post(
                f"{server.base}/api/v1/cases/{case_id}/decision",
                json={"action": "approve"},
                headers={"Authorization": f"Bearer {analyst}"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
        _wait(
            lambda: sorted(_runs(sqlite_url).values()) == ["completed"] * 3,
            60,
            server,
            "all three runs to complete",
        )
    finally:
        server.stop()
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(WorkflowRun)) == 3
        assert (
            sorted(s.execute(select(func.count()).select_from(Note).group_by(Note.case_id)).scalars())
            == [1] * 3
        )
        assert s.scalar(select(func.count()).select_from(Approval)) == 3
        ev = s.execute(
            select(Evidence.case_id, Evidence.evidence_id, func.count()).group_by(
                Evidence.case_id, Evidence.evidence_id
            )
        ).all()
        assert ev and all(n == 1 for *_, n in ev)
        tech = s.execute(
            select(
                CaseTechnique.case_id, CaseTechnique.technique_id, CaseTechnique.source, func.count()
            ).group_by(CaseTechnique.case_id, CaseTechnique.technique_id, CaseTechnique.source)
        ).all()
        assert tech and all(n == 1 for *_, n in tech)
        queued_events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "run.queued")
        )
        assert queued_events == 3
        drafted = s.execute(
            select(ModelCall.run_id, func.count())
            .where(ModelCall.node == "draft_note", ModelCall.error.is_(None))
            .group_by(ModelCall.run_id)
        ).all()
        counts = [n for _, n in drafted]
        assert len(counts) == 3 and len(set(counts)) == 1  # the killed run drafted like the others: once
    engine.dispose()
