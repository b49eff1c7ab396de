"""alert_triage with a real in-process model: a tiny random-weight Llama through the transformers path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from socflow.runner import RunStatus
from socflow.store import CaseStore
from socflow.tables import ModelCall
from socflow.wiring import build_services
from tests.workflows.triage_helpers import ingest_one, settings_for
from workflows.alert_triage.state import Assessment

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from socflow.model.tiny import build_tiny_llama

    torch.set_num_threads(1)
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", seed=3)


def test_tiny_model_reaches_approval_with_a_schema_valid_assessment(
    sqlite_url: str, tmp_path: Path, tiny_model_dir: Path
) -> None:

    settings = settings_for(sqlite_url, tmp_path)
    case_id = ingest_one(
        settings,
        {
            "source": "t",
            "source_ref": "tiny-1",
            "title": "Encoded PowerShell on WS1",
            "severity": "high",
            "description": "powershell.exe -enc JABjAGwA...",
            "rule": {"id": "r", "tags": ["attack.t1059.001"]},
            "entities": {"hosts": ["WS1"], "users": ["alice"]},
        },
    )
    tiny = settings.model.model_copy(
        update={"backend": "transformers", "name": str(tiny_model_dir), "device": "cpu", "max_new_tokens": 32}
    )
    services = build_services(settings.model_copy(update={"model": tiny}), dispatcher="null")
    factory, runner = services.factory, services.runner
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    result = runner.advance(run_id)
    assert result.status is RunStatus.awaiting_input, runner.get(run_id).error
    with factory() as session:
        calls = list(
            session.scalars(select(ModelCall).where(ModelCall.run_id == run_id).order_by(ModelCall.id))
        )
        case = CaseStore(session).get_case(case_id)
    assert {c.backend for c in calls} == {"transformers"}
    by_node = {(c.node, c.method): c for c in calls}
    assess = by_node[("assess_case", "generate_structured")]
    assert assess.error is None and assess.completion_tokens > 0 and assess.latency_ms > 0
    Assessment.model_validate(assess.parsed_output)  # constrained decoding: valid by construction
    scores = (by_node[("assess_case", "score_labels")].parsed_output or {})["scores"]
    assert scores is not None and abs(sum(scores.values()) - 1.0) < 1e-6
    assert case.verdict == assess.parsed_output["verdict"]  # type: ignore[index]
    assert case.confidence is not None and 0.0 <= case.confidence <= 1.0
    assert ("map_attack", "choose") in by_node and ("draft_note", "generate_structured") in by_node
