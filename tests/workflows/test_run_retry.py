"""Runs never stuck: transient model failures are retried per node; a failed run shows its reason on the case
(API, CLI, case page), the case needs attention, and a retry resumes from the last checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from socflow.api import create_app
from socflow.auth import Role
from socflow.dispatch import InlineDispatcher
from socflow.errors import (
    ConfigError,
    InputError,
    NotRetryable,
    SiemUnavailableError,
    StructuredOutputError,
    is_transient,
)
from socflow.model.endpoint import EndpointRejectedError, EndpointTimeoutError, EndpointUnavailableError
from socflow.runner import RunStatus
from socflow.settings import Settings
from socflow.tables import (
    AuditEvent,
    Case,
    CaseTechnique,
    Evidence,
    Note,
    NoteRevision,
    WorkflowRun,
)
from tests.api.conftest import make_token
from tests.web.helpers import SECRET, csrf_of, login
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted

ALERT = {
    "source": "edr",
    "source_ref": "retry-1",
    "title": "Encoded PowerShell",
    "severity": "high",
    "rule": {"id": "r-ps", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
    "entities": {"hosts": ["WS1"], "users": ["alice"], "processes": ["powershell.exe"]},
}


class DownModel:
    """A test double: the scripted model behind an endpoint that is down while ``down`` is true (every
    call raises ``error``), or for the next ``failures`` calls to the node ``node``."""

    def __init__(self, error: type[Exception] = EndpointUnavailableError) -> None:
        self.inner = scripted()
        self.error = error
        self.down = False
        self.failures = 0
        self.node = ""
        self.refused: list[str] = []
        self.answered: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _gate(self, method: str, ctx: Any) -> None:
        from socflow.model.context import resolve_context

        node = resolve_context(ctx).node or ""
        if self.down or (self.failures and node == self.node):
            if not self.down:
                self.failures -= 1
            self.refused.append(node)
            raise self.error(f"{method}: the model endpoint is down")
        self.answered.append(node)

    def generate(self, messages: Sequence[Any], **kw: Any) -> str:
        self._gate("generate", kw.get("ctx"))
        return self.inner.generate(messages, **kw)  # type: ignore[no-any-return]

    def generate_structured(self, messages: Sequence[Any], schema: Any, **kw: Any) -> Any:
        self._gate("generate_structured", kw.get("ctx"))
        return self.inner.generate_structured(messages, schema, **kw)

    def choose(self, messages: Sequence[Any], options: Sequence[str], **kw: Any) -> str:
        self._gate("choose", kw.get("ctx"))
        return self.inner.choose(messages, options, **kw)  # type: ignore[no-any-return]

    def score_labels(self, prompt: Any, labels: Sequence[str], **kw: Any) -> dict[str, float]:
        self._gate("score_labels", kw.get("ctx"))
        return self.inner.score_labels(prompt, labels, **kw)  # type: ignore[no-any-return]


def retry_settings(db_url: str, tmp: Path) -> Settings:
    return Settings(
        database={"url": db_url},
        siem={"path": tmp / "siem.db"},
        model={"backend": "scripted"},
        api={"secret_key": SECRET},
        worker={"node_retries": 2, "retry_backoff_seconds": 0},
    )


def row_counts(runner: Any, case_id: int) -> dict[str, int]:
    with runner.factory() as s:

        def n(table: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(table).where(table.case_id == case_id)) or 0)

        revisions = s.scalar(
            select(func.count()).select_from(NoteRevision).join(Note).where(Note.case_id == case_id)
        )
        triage_started = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.case_id == case_id, AuditEvent.action == "case.status_changed")
            .where(AuditEvent.data["reason"].as_string() == "triage started")
        )
        return {
            "evidence": n(Evidence),
            "techniques": n(CaseTechnique),
            "notes": n(Note),
            "revisions": int(revisions or 0),
            "triage_started": int(triage_started or 0),
        }


def test_transient_errors_are_retried_per_node_without_rerunning_finished_nodes(
    db_url: str, tmp_path: Path
) -> None:
    settings = retry_settings(db_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel()
    model.node, model.failures = "draft_note", 2  # the endpoint drops two calls of the last model node
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    result = runner.advance(run_id)
    assert result.status is RunStatus.awaiting_input, runner.get(run_id).error
    assert model.refused == ["draft_note", "draft_note"]
    # the nodes before draft_note ran once, not once per retry
    assert model.answered.count("assess_case") == 2  # its generate_structured and score_labels
    assert model.answered.count("map_attack") == 1 and "draft_note" in model.answered
    assert row_counts(runner, case_id)["triage_started"] == 1


def test_a_4xx_fails_the_run_at_once(db_url: str, tmp_path: Path) -> None:
    settings = retry_settings(db_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel(EndpointRejectedError)
    model.down = True
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.failed
    assert model.refused == ["map_attack"]  # no retry
    assert runner.get(run_id).error_kind == "endpoint_rejected"
    with runner.factory() as s:
        assert s.get(Case, case_id).status == "needs_attention"  # type: ignore[union-attr]


def test_validation_failures_are_not_retried(db_url: str, tmp_path: Path) -> None:
    """Invalid structured output takes the workflow's marked fallback (needs_review) at once, no retry."""
    settings = retry_settings(db_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel(StructuredOutputError)
    model.down = True
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.awaiting_input
    assert model.refused.count("map_attack") == 1 and model.refused.count("assess_case") == 1
    with runner.factory() as s:
        assert s.get(Case, case_id).verdict == "needs_review"  # type: ignore[union-attr]


def test_a_run_failed_while_the_endpoint_was_down_is_shown_and_retried_from_its_checkpoint(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = retry_settings(sqlite_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel()
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")

    # a clean run of a twin case: the row counts a retried run must end with
    twin = ingest_one(settings, {**ALERT, "source_ref": "retry-twin", "entities": {"hosts": ["WS9"]}})
    assert runner.advance(runner.start("alert_triage", case_id=twin, actor="test")).status is (
        RunStatus.awaiting_input
    )
    clean = row_counts(runner, twin)

    model.answered.clear()
    model.node, model.failures = "assess_case", 99
    assert runner.advance(run_id).status is RunStatus.failed
    assert model.refused == ["assess_case"] * 3  # the first try and node_retries=2 retries
    before_retry = list(model.answered)
    run = runner.get(run_id)
    assert run.error_kind == "endpoint_unavailable" and "down" in (run.error or "")

    app = create_app(settings, dispatcher=InlineDispatcher(runner))
    app.state.services._runner = runner
    with TestClient(app) as client:
        analyst = make_token(sqlite_url, Role.analyst, name="ana")
        detail = client.get(f"/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {analyst}"}).json()
        assert detail["status"] == "needs_attention"
        failed = next(r for r in detail["runs"] if r["id"] == run_id)
        assert failed["status"] == "failed" and failed["error_kind"] == "endpoint_unavailable"

        login(client, analyst)
        page = client.get(f"/cases/{case_id}")
        assert "needs_attention" in page.text and "the model endpoint is down" in page.text
        assert f'action="/cases/{case_id}/runs/{run_id}/retry"' in page.text

        # the endpoint comes back; the case page's Retry button resumes the run (inline dispatcher)
        model.failures = 0
        resp = client.post(
            f"/cases/{case_id}/runs/{run_id}/retry",
            data={"csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert resp.status_code == 303, resp.text
        assert runner.get(run_id).status == RunStatus.awaiting_input.value
        # gather/map ran once before the failure; after the retry only assess_case and later nodes ran
        resumed = model.answered[len(before_retry) :]
        assert "map_attack" in before_retry and "map_attack" not in resumed and "assess_case" in resumed
        assert row_counts(runner, case_id) == clean
        with runner.factory() as s:
            assert s.get(Case, case_id).status == "awaiting_approval"  # type: ignore[union-attr]
            assert (
                s.scalar(select(func.count()).select_from(WorkflowRun).where(WorkflowRun.case_id == case_id))
                == 1
            )

        # a second retry of a run that is no longer failed: 409 through the API
        again = client.post(
            f"/api/v1/runs/{run_id}/retry",
            headers={"Authorization": f"Bearer {make_token(sqlite_url, Role.admin)}"},
        )
        assert again.status_code == 409 and again.json()["code"] == "not_retryable"
    with pytest.raises(NotRetryable):
        runner.retry(run_id, actor="test")


def test_cli_runs_retry_and_cases_show(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = retry_settings(sqlite_url, tmp_path)
    case_id = ingest_one(settings, ALERT)
    model = DownModel()
    model.down = True
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    assert runner.advance(run_id).status is RunStatus.failed

    from socflow import cli, wiring
    from socflow.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "siem.db"))
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    get_settings.cache_clear()
    model.down = False
    monkeypatch.setattr(wiring, "build_runner", lambda *args, **kw: runner)
    try:
        shown = CliRunner().invoke(cli.app, ["cases", "show", str(case_id)])
        assert shown.exit_code == 0, shown.output
        assert "status=needs_attention" in shown.output and f"socflow runs retry {run_id}" in shown.output
        assert "endpoint_unavailable" in shown.output
        retried = CliRunner().invoke(cli.app, ["runs", "retry", run_id])
        assert retried.exit_code == 0, retried.output
        assert f"run {run_id} awaiting_input" in retried.output
        again = CliRunner().invoke(cli.app, ["runs", "retry", run_id])
        assert again.exit_code == 1 and "only a failed run" in again.output
    finally:
        get_settings.cache_clear()


def _status_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, request=request))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (EndpointUnavailableError("503"), True),
        (EndpointTimeoutError("slow"), True),
        (SiemUnavailableError("down"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (ConnectionRefusedError(), True),
        (_status_error(429), True),
        (_status_error(503), True),
        (_status_error(404), False),
        (_status_error(400), False),
        (EndpointRejectedError("400: prompt longer than the context"), False),
        (StructuredOutputError("invalid"), False),
        (InputError("bad"), False),
        (ConfigError("bad"), False),
        (httpx.UnsupportedProtocol("ftp"), False),
        (ValueError("x"), False),
    ],
)
def test_the_transient_family(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_socflow_error_decides_over_its_cause() -> None:
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as inner:
            raise StructuredOutputError("gave up") from inner
    except StructuredOutputError as outer:
        assert not is_transient(outer)
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
