"""A model-holding worker with the production composition (``socflow worker``, no test services): runs of a
transformers-backed deployment are routed to the model queue, one worker process builds its runner (and so
loads the model) once, lazily, and serves several runs at once from a thread pool through the batching
engine. The model is a tiny random-weight Llama on CPU (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from socflow.db import make_engine, session_factory
from socflow.tables import ModelCall
from tests.workers.conftest import (
    Fleet,
    RedisServer,
    alert,
    ingester,
    run_counts,
    settings_env,
    wait_for,
    worker_settings,
)
from workers.dispatch import CeleryDispatcher

pytestmark = [
    pytest.mark.celery,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.model,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]

RUNS = 3


@pytest.mark.timeout(420)
def test_a_model_worker_loads_the_model_once_and_serves_runs_concurrently(
    pg_url: str, redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from socflow.model.tiny import build_tiny_llama

    model_dir = tmp_path / "tiny"
    build_tiny_llama(model_dir, 0)
    settings = worker_settings(pg_url, redis_server.url, tmp_path)
    settings = settings.model_copy(
        update={
            "model": settings.model.model_copy(
                update={
                    "backend": "transformers",
                    "name": str(model_dir),
                    "device": "cpu",
                    "max_new_tokens": 32,
                }
            )
        }
    )
    env = settings_env(settings)
    env.update(
        {
            "SOCFLOW_MODEL__NAME": str(model_dir),
            "SOCFLOW_MODEL__DEVICE": "cpu",
            "SOCFLOW_MODEL__MAX_NEW_TOKENS": "32",
            "SOCFLOW_WORKER__MODEL_QUEUE": "gpu",
        }
    )
    fleet.env = env
    # no --queues, no --pool: the defaults of a model-holding configuration (the model queue, threads)
    fleet.start(
        "gpu-worker",
        "worker",
        "--hostname",
        "gpu-worker@%h",
        "--concurrency",
        str(RUNS),
        "--cpu-threads",
        "1",
    )
    dispatcher = CeleryDispatcher(settings)
    report = ingester(settings, dispatcher).ingest_text(
        "\n".join(json.dumps(alert(i)) for i in range(RUNS)), actor="test"
    )
    assert [dispatcher.queue_of(r) for r in report.runs_queued] == ["gpu"] * RUNS

    def settled() -> bool:
        fleet.alive()
        counts = run_counts(settings)
        return counts.get("queued", 0) == counts.get("running", 0) == 0

    wait_for(settled, 360, lambda: f"runs: {run_counts(settings)}\n{fleet.logs()}", step=1.0)
    assert run_counts(settings) == {"awaiting_input": RUNS}, fleet.logs()
    log = fleet.log("gpu-worker")
    assert "concurrency: 3 (thread)" in log and ".> gpu " in log, log[:3000]
    assert log.count("built its services") == 1, log
    assert log.count(f"model {model_dir} loaded") == 1, log  # one load for the process's concurrent runs
    factory = session_factory(make_engine(pg_url))
    with factory() as s:
        calls = list(s.scalars(select(ModelCall)))
    assert {c.backend for c in calls} == {"transformers"}
    assert {c.run_id for c in calls} == set(report.runs_queued)
    dispatcher.shutdown()
