"""The worker process: thin tasks with retries for transient errors, a runner built once per process
(after a fork), the model's CPU threads, and the CLI's refusals (no broker)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from socflow.runner import AdvanceResult, RunStatus
from socflow.settings import Settings
from socflow.wiring import build_jobs, build_services
from workers.celery_app import make_app
from workers.cli import make_worker_cli
from workers.routing import ADVANCE_TASK
from workers.runtime import WorkerRuntime, set_cpu_threads

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kombu.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:celery.*"),
]


class FlakyRunner:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def advance(self, run_id: str) -> AdvanceResult:
        self.calls.append(run_id)
        if len(self.calls) <= self.failures:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database restarts"))
        return AdvanceResult(run_id, RunStatus.awaiting_input, True)


def _settings(sqlite_url: str) -> Settings:
    return Settings(_env_file=None, database={"url": sqlite_url}, broker={"url": "memory://"})  # type: ignore[call-arg]


def test_advance_task_retries_transient_database_errors(sqlite_url: str) -> None:
    runner = FlakyRunner(failures=2)
    built: list[int] = []

    def build(settings: Settings) -> Any:
        built.append(os.getpid())
        return SimpleNamespace(runner=runner)

    app = make_app(_settings(sqlite_url), build=build)
    result = app.tasks[ADVANCE_TASK].apply(args=["run-1"])
    assert result.state == "SUCCESS"
    assert runner.calls == ["run-1"] * 3
    assert built == [os.getpid()]  # one runner for the process, kept across tasks


def test_the_runtime_builds_its_runner_once_and_again_after_a_fork(sqlite_url: str) -> None:
    built: list[object] = []

    def build(settings: Settings) -> Any:
        built.append(SimpleNamespace(runner=object()))
        return built[-1]

    runtime = WorkerRuntime(_settings(sqlite_url), build)
    first = runtime.runner()
    assert runtime.runner() is first and len(built) == 1
    runtime._pid = -1  # as seen from a forked child
    assert runtime.runner() is not first and len(built) == 2
    runtime.reset()  # worker_process_init
    runtime.runner()
    assert len(built) == 3


def test_cpu_threads_are_set_before_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    set_cpu_threads(3)
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"


def test_worker_commands_need_a_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("SOCFLOW_BROKER__URL", raising=False)
    worker_cli = make_worker_cli(build_services, build_jobs)
    for args in ([], ["status"]):
        result = CliRunner().invoke(worker_cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "SOCFLOW_BROKER__URL is empty" in result.output
