"""The assess prompt is trimmed to the model's context: lowest-priority evidence first, with a note in the
prompt (and so in the recorded prompt of ``model_calls``); a case that fits is prompted as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from socflow.dispatch import NullDispatcher
from socflow.doors import door_ingest
from socflow.model.budget import PromptBudget, estimate_tokens, prompt_budget
from socflow.model.schema import bounded_schema
from socflow.model.scripted import ScriptedModel, render_messages
from socflow.runner import RunStatus
from socflow.tables import ModelCall
from tests.workflows.triage_helpers import make_runner, scripted_rules, settings_for
from workflows.alert_triage.prompts import CASE_MAX_CHARS, case_block, fit_case
from workflows.alert_triage.state import Assessment

ANSWER = bounded_schema(Assessment).token_budget
EVIDENCE = [f"evidence item {i}: " + "process powershell.exe on WS1 by alice " * 4 for i in range(1, 21)]
ALERTS = ["Encoded PowerShell (high): powershell.exe -enc JAB..."]


def estimated(context: int) -> PromptBudget:
    return PromptBudget(context, lambda messages: estimate_tokens(render_messages(messages)))


def test_everything_fits_unchanged() -> None:
    prompt = fit_case(
        "t", "high", ALERTS, EVIDENCE[:3], ["T1059"], budget=estimated(100_000), answer_tokens=ANSWER
    )
    assert (prompt.kept, prompt.note) == (3, None)
    assert prompt.block == case_block("t", "high", ALERTS, EVIDENCE[:3])
    assert "left out" not in prompt.assess(["T1059"])[1]["content"]


@pytest.mark.parametrize("context", [1300, 1600, 1900])
def test_tiny_context_trims_lowest_priority_evidence_and_says_so(context: int) -> None:
    budget = estimated(context)
    prompt = fit_case("t", "high", ALERTS, EVIDENCE, ["T1059"], budget=budget, answer_tokens=ANSWER)
    messages = prompt.assess(["T1059"])
    assert budget.count(messages) + ANSWER <= context, "the prompt and the answer fit the context"
    assert 0 < prompt.kept < len(EVIDENCE)
    # the highest-priority items stay, the last ones go
    assert f"[E{prompt.kept}] {EVIDENCE[prompt.kept - 1]}" in prompt.block
    assert EVIDENCE[prompt.kept] not in prompt.block
    note = f"Note: {len(EVIDENCE) - prompt.kept} of {len(EVIDENCE)} evidence items"
    assert note in messages[1]["content"] and f"context of {context} tokens" in messages[1]["content"]
    assert note in prompt.score()[1]["content"]
    # the most evidence that fits: one more item would not
    more = fit_case(
        "t", "high", ALERTS, EVIDENCE, ["T1059"], budget=estimated(context + 400), answer_tokens=ANSWER
    )
    assert more.kept > prompt.kept


def test_the_fence_bound_trims_too_without_a_budget() -> None:
    long = [e * 3 for e in EVIDENCE]
    prompt = fit_case("t", "high", ALERTS, long, [], budget=None, answer_tokens=ANSWER)
    assert len(prompt.block) <= CASE_MAX_CHARS and prompt.kept < len(long)
    assert prompt.note is not None and f"bound of {CASE_MAX_CHARS} characters" in prompt.note
    assert "[truncated]" not in prompt.assess([])[1]["content"], "whole items, never a cut one"


def test_prompt_budget_of_a_model() -> None:
    model = ScriptedModel([])
    assert prompt_budget(model) is None, "no context known: no token trimming"
    model.context_tokens = 512
    budget = prompt_budget(model)
    assert budget is not None and budget.context_tokens == 512
    assert prompt_budget(None) is None


def test_a_triage_run_with_a_tiny_context_records_the_trimmed_prompt(sqlite_url: str, tmp_path: Path) -> None:
    """End to end: 12 alerts of one incident (12 evidence items) and a model whose context is 3,200
    tokens (the schema instruction and the alerts take about 1,800, the answer 744): the run reaches
    approval, the recorded assess prompt fits and says evidence was left out."""
    settings = settings_for(sqlite_url, tmp_path)
    with door_ingest(settings, dispatcher=NullDispatcher()) as door:
        report = door.service.ingest_text(
            "\n".join(
                json.dumps(
                    {
                        "source": "edr",
                        "source_ref": f"ctx-{n}",
                        "title": "Encoded PowerShell on WS1",
                        "severity": "high",
                        "description": f"run {n}: powershell.exe -enc " + "JABjAGwAaQBlAG4AdAAgAD0A" * 10,
                        "rule": {"id": "r-enc", "tags": ["attack.t1059.001"]},
                        "entities": {"hosts": ["WS1"], "users": ["alice"]},
                    }
                )
                for n in range(12)
            ),
            actor="test",
        )
    case_ids = {i.case_id for i in report.items}
    assert report.accepted == 12 and len(case_ids) == 1
    model = ScriptedModel(scripted_rules())
    model.context_tokens = 3200
    runner = make_runner(settings, model)
    run_id = runner.start("alert_triage", case_id=case_ids.pop(), actor="test")
    assert runner.advance(run_id).status is RunStatus.awaiting_input, runner.get(run_id).error
    with runner.deps.factory() as session:
        calls = list(
            session.scalars(
                select(ModelCall).where(ModelCall.run_id == run_id, ModelCall.node == "assess_case")
            )
        )
    structured = [c for c in calls if c.method == "generate_structured"]
    assert structured and all(
        "evidence items (the lowest-priority ones) were left out" in c.prompt for c in calls
    )
    for call in structured:
        assert estimate_tokens(call.prompt) + ANSWER <= 3200


@pytest.mark.model
def test_the_transformers_backend_knows_its_context_and_counts_exactly(tmp_path: Path) -> None:
    """A real tokenizer and a model config whose context is 2,600 tokens (no override): the trimmed
    prompt, schema instruction included, plus the answer budget fits it, counted by the tokenizer."""
    torch = pytest.importorskip("torch")
    from socflow.model.hf import TransformersModel
    from socflow.model.structured import schema_instruction, with_instruction
    from socflow.model.tiny import build_tiny_llama

    torch.set_num_threads(1)
    path = build_tiny_llama(tmp_path / "tiny", seed=1, max_position_embeddings=2600)
    model = TransformersModel(str(path), device="cpu")
    budget = prompt_budget(model)
    assert budget is not None and budget.context_tokens == 2600
    instruction = schema_instruction(bounded_schema(Assessment).schema_json)
    prompt = fit_case(
        "t", "high", ALERTS, EVIDENCE, ["T1059"], budget=budget, answer_tokens=ANSWER, instruction=instruction
    )
    assert 0 < prompt.kept < len(EVIDENCE) and prompt.note is not None
    tokens = model.count_tokens(with_instruction(prompt.assess(["T1059"]), instruction))
    assert tokens + ANSWER <= 2600
