"""Fixtures for the evaluation tests: the tiny model (built once per session), scripted models, fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from socflow.model.scripted import ScriptedModel, ScriptRule

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "socflow" / "samples" / "eval"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from socflow.model.tiny import build_tiny_llama

    torch.set_num_threads(1)  # hidden size 64 gains nothing from threads on a shared runner
    return build_tiny_llama(tmp_path_factory.mktemp("eval-tiny") / "model", seed=3)


def triage_model(verdicts: dict[str, tuple[str, str, float]]) -> ScriptedModel:
    """Verdict, priority and confidence chosen by a marker word in the alert title (prompt content)."""

    def pick(messages: Any) -> tuple[str, str, float]:
        text = "\n".join(m["content"] for m in messages)
        for marker, answer in verdicts.items():
            if marker in text:
                return answer
        raise AssertionError("no marker in the prompt")

    def scores(prompt: Any, method: str, labels: Any) -> dict[str, float]:
        verdict, _, confidence = pick(prompt if isinstance(prompt, list) else [{"content": prompt}])
        rest = (1 - confidence) / 2
        return {label: (confidence if label == verdict else rest) for label in labels}

    return ScriptedModel(
        [
            ScriptRule(lambda m, method, options: str(options[0]), node="map_attack", method="choose"),
            ScriptRule(
                lambda m, method, schema: {
                    "verdict": pick(m)[0],
                    "priority": pick(m)[1],
                    "rationale": "scripted",
                    "evidence": ["E1"],
                },
                node="assess_case",
                method="generate_structured",
            ),
            ScriptRule(scores, node="assess_case", method="score_labels"),
            ScriptRule(
                lambda m, method, schema: {
                    "summary": ["The alert fired [E1]."],
                    "impacted": ["The host [E1]."],
                    "timeline": ["The alert fired [E1]."],
                    "next_steps": ["Review it."],
                },
                node="draft_note",
                method="generate_structured",
            ),
        ]
    )
