"""Every model call writes exactly one model_calls row, success or failure, for every backend and method."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import ModelError
from socflow.model.base import CallContext, Message
from socflow.model.recorder import ModelCallRecorder
from socflow.tables import ModelCall
from socflow.testing import ScriptedModel, ScriptRule


class Verdict(BaseModel):
    verdict: Literal["benign", "malicious"]
    summary: str = Field(pattern=r"^[ -~]{0,30}$")


class Impossible(BaseModel):
    """Valid JSON for the grammar, always rejected by pydantic: a validation failure after decoding."""

    verdict: Literal["benign", "malicious"]

    @field_validator("verdict")
    @classmethod
    def _never(cls, value: str) -> str:
        raise ValueError("rejected by policy")


SHORT = [Message(role="user", content="5 failed logons for alice on WS123 then LSASS access")]
LONG = [Message(role="user", content="failed logon " * 3000)]  # past the tiny model's 2048-token context
OPTIONS = ["T1059", "T1059.001", "T1059.003"]
LABELS = ["benign", "malicious"]

Call = Callable[[Any, CallContext], Any]

CALLS: dict[tuple[str, str], Call] = {
    ("generate", "success"): lambda m, c: m.generate(SHORT, ctx=c, max_new_tokens=4),
    ("generate_structured", "success"): lambda m, c: m.generate_structured(SHORT, Verdict, ctx=c),
    ("choose", "success"): lambda m, c: m.choose(SHORT, OPTIONS, ctx=c),
    ("score_labels", "success"): lambda m, c: m.score_labels(SHORT, LABELS, ctx=c),
}


def _failing_call(backend: str, method: str) -> Call:
    if method == "generate_structured":
        return lambda m, c: m.generate_structured(SHORT, Impossible, ctx=c)
    if backend == "scripted":
        return {
            "generate": lambda m, c: m.generate(
                [Message(role="user", content="nobody scripted this")], ctx=c
            ),
            "choose": lambda m, c: m.choose(SHORT, ["T1003"], ctx=c),
            "score_labels": lambda m, c: m.score_labels(SHORT, ["unknown"], ctx=c),
        }[method]
    return {
        "generate": lambda m, c: m.generate(LONG, ctx=c),
        "choose": lambda m, c: m.choose(LONG, OPTIONS, ctx=c),
        "score_labels": lambda m, c: m.score_labels(LONG, LABELS, ctx=c),
    }[method]


def _scripted(recorder: ModelCallRecorder) -> ScriptedModel:
    return ScriptedModel(
        [
            ScriptRule("a short answer", method="generate", contains="LSASS"),
            ScriptRule({"verdict": "malicious", "summary": "lsass"}, method="generate_structured"),
            ScriptRule("T1059.001", method="choose"),
            ScriptRule({"benign": 1.0, "malicious": 3.0}, method="score_labels"),
        ],
        recorder=recorder,
    )


@pytest.mark.parametrize("outcome", ["success", "failure"])
@pytest.mark.parametrize("method", ["generate", "generate_structured", "choose", "score_labels"])
@pytest.mark.parametrize("backend", ["scripted", pytest.param("transformers", marks=pytest.mark.model)])
def test_exactly_one_row_per_call(
    backend: str, method: str, outcome: str, factory: sessionmaker[Session], request: pytest.FixtureRequest
) -> None:
    recorder = ModelCallRecorder(factory)
    if backend == "scripted":
        model: Any = _scripted(recorder)
    else:
        pytest.importorskip("torch")
        from socflow.model.hf import TransformersModel

        tiny_dir: Path = request.getfixturevalue("tiny_dir")
        model = TransformersModel(tiny_dir, device="cpu", recorder=recorder)
    ctx = CallContext(run_id="run-42", case_id=7, node="assess_alert")
    call = CALLS[(method, outcome)] if outcome == "success" else _failing_call(backend, method)

    if outcome == "success":
        result = call(model, ctx)
        if method == "choose":
            assert result in OPTIONS
        if method == "score_labels":
            assert sum(result.values()) == pytest.approx(1.0)
    else:
        with pytest.raises(ModelError):
            call(model, ctx)

    with factory() as session:
        rows = session.scalars(select(ModelCall)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.method, row.backend, row.run_id, row.case_id, row.node) == (
        method,
        backend,
        "run-42",
        7,
        "assess_alert",
    )
    assert row.prompt
    assert row.prompt_tokens > 0
    assert row.latency_ms > 0
    if backend == "transformers":
        assert row.model_revision and row.model_revision.startswith("sha256:")
    if outcome == "success":
        assert row.error is None and row.error_kind is None
        assert row.completion_tokens > 0
        assert row.raw_output is not None
        if method != "generate":
            assert row.parsed_output is not None
    else:
        assert row.error and row.error_kind
        assert row.parsed_output is None
        if method == "generate_structured":
            assert row.error_kind == "structured_output_invalid"
            assert row.parameters["attempts"] == 2
            assert row.completion_tokens > 0
