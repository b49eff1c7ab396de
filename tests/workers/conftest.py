"""Real services for the worker tests: a Redis server of the test's own (on a free port, stoppable),
PostgreSQL (``pg_url``), and real worker processes (``python -m workers``, the code behind
``socflow worker``) running the scripted worker app. Waits are bounded and print the logs on failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.ingest import IngestService
from socflow.settings import Settings
from socflow.tables import WorkflowRun
from socflow.wiring import ingest_options
from tests.conftest import REPO_ROOT, service_missing
from workers.dispatch import CeleryDispatcher

WORKER_SERVICES = "tests.workers.scripted_worker:build_services"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` on a free port, without persistence: a restart loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 20, lambda: f"redis did not start: {self.read_log()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # no shutdown save: whatever was queued is gone
            self.proc.wait(timeout=10)
        self.proc = None

    def llen(self, key: str) -> int:
        client = redis.Redis.from_url(self.url)
        try:
            return int(client.llen(key))  # type: ignore[arg-type]
        finally:
            client.close()

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        service_missing("Redis", "redis-server is not on PATH")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    server.start()
    yield server
    server.stop()


def wait_for(
    pred: Callable[[], bool], timeout: float, diagnostics: Callable[[], str], step: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s\n{diagnostics()}", pytrace=False)
        time.sleep(step)


@dataclass
class Fleet:
    """Worker and sweeper processes of one test, with their logs."""

    env: dict[str, str]
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        log = (self.logdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "socflow", *args],
            cwd=REPO_ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.start(
            name,
            "worker",
            "--services",
            WORKER_SERVICES,
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            "info",
            *args,
            extra_env=extra_env,
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"----- {p.stem} -----\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.logdir.glob("*.log"))
        )

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{self.logs()}", pytrace=False)

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def worker_settings(db_url: str, broker_url: str, tmp: Path, **extra: Any) -> Settings:
    return Settings(
        database={"url": db_url},
        broker={"url": broker_url},
        siem={"path": tmp / "siem.db"},
        model={"backend": "scripted"},
        **extra,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SOCFLOW_*`` environment that gives a child process ``settings``' database, broker, ..."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCFLOW_")}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "SOCFLOW_DATABASE__URL": settings.database.url,
            "SOCFLOW_BROKER__URL": settings.broker.url,
            "SOCFLOW_SIEM__PATH": str(settings.siem.path),
            "SOCFLOW_MODEL__BACKEND": settings.model.backend,
            "SOCFLOW_WORKER__RUN_LEASE_SECONDS": str(settings.worker.run_lease_seconds),
            "SOCFLOW_WORKER__CONCURRENCY": str(settings.worker.concurrency),
            "SOCFLOW_GROUPING__WINDOW_SECONDS": str(settings.grouping.window_seconds),
            "SOCFLOW_GROUPING__KEY_FIELDS": json.dumps(settings.grouping.key_fields),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    f = Fleet(env={}, logdir=logdir)
    yield f
    f.stop_all()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f.logs())


def ingester(settings: Settings, dispatcher: CeleryDispatcher) -> IngestService:
    factory = session_factory(make_engine(settings.database.url))
    return IngestService(factory, on_run_queued=dispatcher.submit, **ingest_options(settings))


def run_counts(settings: Settings) -> dict[str, int]:
    factory = session_factory(make_engine(settings.database.url))
    with factory() as s:
        rows = s.execute(select(WorkflowRun.status, func.count()).group_by(WorkflowRun.status)).all()
    factory.kw["bind"].dispose()
    return {status: int(n) for status, n in rows}


def alert(i: int, *, host: str | None = None, ref: str | None = None) -> dict[str, Any]:
    return {
        "source": "test-celery",
        "source_ref": ref or f"a-{i}",
        "title": f"Encoded PowerShell {i}",
        "severity": "high",
        "rule": {"id": "r-ps", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [host or f"WS{i}"], "users": ["alice"]},
    }


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
