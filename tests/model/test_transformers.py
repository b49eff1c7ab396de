"""The transformers backend on tiny random-weight Llamas: constrained decoding, choice, label scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import ModelUnavailable, StructuredOutputError, UnboundedSchemaError
from socflow.model.base import Message
from socflow.model.recorder import ModelCallRecorder
from socflow.tables import ModelCall

pytestmark = [pytest.mark.model]
torch = pytest.importorskip("torch")

N_SEEDS = 20


class Host(BaseModel):
    name: str = Field(pattern=r"^[ -~]{0,8}$")
    risk: int = Field(ge=0, le=9)


class Triage(BaseModel):
    verdict: Literal["benign", "malicious", "needs_review"]
    summary: str = Field(pattern=r"^[ -~]{0,24}$")
    severity: int = Field(ge=0, le=100)
    hosts: list[Host] = Field(max_length=2)


PROMPT = [Message(role="user", content="Summarise: 5 failed logons for alice on WS123 then LSASS access")]
TECHNIQUES = ["T1059", "T1059.001", "T1059.003"]


def _client(path: Path, **kwargs: Any) -> Any:
    from socflow.model.hf import TransformersModel

    return TransformersModel(path, device="cpu", **kwargs)


def test_constrained_structured_output_always_validates(tiny_dirs: list[Path]) -> None:
    valid_constrained = 0
    valid_free = 0
    for path in tiny_dirs[:N_SEEDS]:
        out = _client(path).generate_structured(PROMPT, Triage)  # raises if invalid: the test fails
        assert isinstance(out, Triage)
        valid_constrained += 1
        try:
            _client(path, constrained=False).generate_structured(PROMPT, Triage)
            valid_free += 1
        except StructuredOutputError:
            pass
    assert valid_constrained == N_SEEDS
    assert N_SEEDS - valid_free >= 15, f"unconstrained decoding validated {valid_free}/{N_SEEDS} times"


def test_choose_only_returns_an_option_across_seeds(tiny_dirs: list[Path]) -> None:
    seen = set()
    for path in tiny_dirs:
        choice = _client(path).choose(PROMPT, TECHNIQUES)
        assert choice in TECHNIQUES
        seen.add(choice)
    assert len(tiny_dirs) == 50
    assert len(seen) >= 2, "prefix-sharing options: more than one should be reachable over 50 seeds"


def test_unbounded_schema_is_rejected_before_generation(tiny_model: Any) -> None:
    class Free(BaseModel):
        text: str

    with pytest.raises(UnboundedSchemaError):
        tiny_model.generate_structured(PROMPT, Free)


def test_score_labels_ranks_a_trained_label_first(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "Alert: LSASS memory read by procdump.exe on WS123. Verdict:"
    labels = ["benign", "malicious", "needs_review"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ids = tokenizer(prompt)["input_ids"] + tokenizer(" malicious", add_special_tokens=False)["input_ids"]
    batch = torch.tensor([ids])
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = tmp_path / "trained"
    model.save_pretrained(trained)
    tokenizer.save_pretrained(trained)

    scores = _client(trained).score_labels(prompt, [" benign", " malicious", " needs_review"])
    assert sum(scores.values()) == pytest.approx(1.0)
    assert max(scores, key=lambda k: scores[k]) == " malicious"
    assert scores[" malicious"] > 0.9

    untrained = _client(tiny_dir).score_labels([Message(role="user", content=prompt)], labels)
    assert sum(untrained.values()) == pytest.approx(1.0)
    assert set(untrained) == set(labels)


def test_generate_is_greedy_and_bounded(tiny_dir: Path, factory: sessionmaker[Session]) -> None:
    client = _client(tiny_dir, recorder=ModelCallRecorder(factory))
    first = client.generate(PROMPT, max_new_tokens=8)
    assert first == client.generate(PROMPT, max_new_tokens=8)
    with factory() as session:
        rows = session.scalars(select(ModelCall)).all()
    assert [r.completion_tokens for r in rows] == [8, 8]
    assert rows[0].parameters["repetition_penalty"] == 1.2
    assert "<|im_start|>assistant" in rows[0].prompt  # the tokenizer's chat template was applied


def test_missing_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        _client(tmp_path / "nothing-here").generate(PROMPT)
    with pytest.raises(ModelUnavailable):
        _client(tmp_path / "missing.gguf").generate(PROMPT)


def test_revision_is_the_weights_digest(tiny_model: Any) -> None:
    assert str(tiny_model.load().revision).startswith("sha256:")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_langchain_chat_model_invokes(tiny_model: Any) -> None:
    chat = tiny_model.as_langchain(max_new_tokens=5)
    reply = chat.invoke("hello")
    assert isinstance(reply.content, str)
