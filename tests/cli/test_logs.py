"""Structured logs: ``socflow serve`` with JSON logs writes one JSON object per line with the request id;
secrets are masked before anything is written."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from socflow.logs import RedactFilter, configure_logging, log_context, secret_values
from socflow.settings import Settings
from tests.conftest import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_json_logs_writes_one_object_per_line_with_the_request_id(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SOCFLOW_DATABASE__URL": sqlite_url,
        "SOCFLOW_MODEL__BACKEND": "scripted",
        "SOCFLOW_SIEM__PATH": str(tmp_path / "siem.db"),
        "SOCFLOW_LOG__FORMAT": "json",
        "SOCFLOW_LOG__LEVEL": "info",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "socflow", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "socflow serve did not start"
                time.sleep(0.3)
        given = httpx.get(base + "/api/v1/cases", headers={"X-Request-ID": "req-test-42"}, timeout=10)
        assert given.status_code == 401 and given.headers["x-request-id"] == "req-test-42"
        made = httpx.get(base + "/login", headers={"X-Request-ID": "bad id with spaces"}, timeout=10)
        assert made.status_code == 200 and len(made.headers["x-request-id"]) == 32
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    requests = {r.get("request_id"): r for r in records if r["message"] == "request"}
    assert requests["req-test-42"]["path"] == "/api/v1/cases" and requests["req-test-42"]["status"] == 401
    assert requests[made.headers["x-request-id"]]["path"] == "/login"
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own lines, as JSON too


def test_secrets_are_masked_in_messages_extras_and_tracebacks() -> None:
    settings = Settings(
        database={"url": "postgresql+psycopg://socflow:db-pass-1234@db:5432/socflow"},
        broker={"url": "redis://:broker-pass-5678@redis:6379/0"},
        log={"format": "json"},
    )
    assert {"db-pass-1234", "broker-pass-5678"} <= set(secret_values(settings))
    stream = io.StringIO()
    handler = configure_logging(settings, stream=stream, extra_secrets=["connector-key-9999"])
    log = logging.getLogger("socflow.test")
    try:
        with log_context(run_id="run-1", case_id=7, user="ana"):
            log.warning("connect to %s failed", settings.database.url, extra={"target": settings.broker.url})
            try:
                raise RuntimeError("auth with connector-key-9999 to https://u:other-pw@x.example/ refused")
            except RuntimeError:
                log.exception("poll failed")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    for secret in ("db-pass-1234", "broker-pass-5678", "connector-key-9999", "other-pw"):
        assert secret not in out
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["run_id"] == "run-1" and first["case_id"] == 7 and first["user"] == "ana"
    assert "socflow:***@db:5432" in first["message"] and first["target"] == "redis://:***@redis:6379/0"
    assert "RuntimeError" in second["exc"] and "***" in second["exc"]


def test_redaction_of_a_planted_secret_str() -> None:
    from pydantic import BaseModel, SecretStr

    class Holder(BaseModel):
        api_key: SecretStr

    assert secret_values(Holder(api_key=SecretStr("sk-planted-0000"))) == ["sk-planted-0000"]
    assert RedactFilter(["sk-planted-0000"]).redact("key=sk-planted-0000") == "key=***"
