"""In-process batching: concurrent calls share forward passes and give the one-at-a-time answers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from socflow.errors import ModelError
from socflow.model.base import Message

pytestmark = [pytest.mark.model]
torch = pytest.importorskip("torch")


class Host(BaseModel):
    name: str = Field(pattern=r"^[ -~]{0,8}$")
    risk: int = Field(ge=0, le=9)


class Triage(BaseModel):
    verdict: Literal["benign", "malicious", "needs_review"]
    summary: str = Field(pattern=r"^[ -~]{0,24}$")
    hosts: list[Host] = Field(max_length=2)


ALERTS = [
    "5 failed logons for alice on WS123 then LSASS access",
    "powershell -enc on WS7",
    "scheduled backup on the file server touched 10000 files in 2 minutes, user svc_backup",
    "T1059",
    "procdump.exe opened a handle to lsass.exe; the analyst approved the containment",
    "benign",
    "cmd /c whoami from an Office macro",
    "The user logged on to the host.",
]
OPTIONS = ["T1059", "T1059.001", "T1059.003"]
LABELS = ["benign", "malicious", "needs_review"]


def _messages(text: str) -> list[Message]:
    return [
        Message(role="system", content="You are a SOC triage assistant."),
        Message(role="user", content=f"Summarise: {text}"),
    ]


def _clients(path: Path, size: int = 8) -> tuple[Any, Any]:
    from socflow.model.hf import TransformersModel

    alone = TransformersModel(path, device="cpu", max_new_tokens=12)
    # A long wait with max size = the number of concurrent calls: they always land in one batch.
    batched = TransformersModel(
        path, device="cpu", max_new_tokens=12, batching=True, batch_max_size=size, batch_wait_ms=5000
    )
    return alone, batched


def _concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_batched_greedy_tokens_equal_one_at_a_time(tiny_dirs: list[Path]) -> None:
    for path in tiny_dirs[:3]:
        alone, batched = _clients(path)
        try:
            loaded = alone.load()
            prompts = [alone.render(_messages(a)) for a in ALERTS]
            ids = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
            assert len({len(i) for i in ids}) > 4, "prompts of different lengths exercise the left padding"
            expected = []
            for prompt_ids in ids:
                out = loaded.model.generate(
                    input_ids=torch.tensor([prompt_ids]),
                    attention_mask=torch.ones((1, len(prompt_ids)), dtype=torch.long),
                    max_new_tokens=12,
                    do_sample=False,
                    repetition_penalty=alone.repetition_penalty,
                    eos_token_id=loaded.eos_ids,
                    pad_token_id=loaded.pad_id,
                )
                expected.append(out[0][len(prompt_ids) :].tolist())
            engine = batched.batcher()
            got = _concurrently([lambda p=p, e=engine: e.generate(p, 12) for p in ids])
            assert got == expected
            assert engine.stats.largest == len(ALERTS)
        finally:
            batched.close()


def test_batched_structured_choose_and_generate_equal_one_at_a_time(tiny_dirs: list[Path]) -> None:
    for path in tiny_dirs[:2]:
        alone, batched = _clients(path)
        try:
            calls: list[Callable[[Any], Any]] = []
            for i, alert in enumerate(ALERTS):
                msgs = _messages(alert)
                if i % 3 == 0:
                    calls.append(lambda m, msgs=msgs: m.generate_structured(msgs, Triage))
                elif i % 3 == 1:
                    calls.append(lambda m, msgs=msgs: m.choose(msgs, OPTIONS))
                else:
                    calls.append(lambda m, msgs=msgs: m.generate(msgs, max_new_tokens=10))
            expected = [call(alone) for call in calls]
            got = _concurrently([lambda call=call, b=batched: call(b) for call in calls])
            assert got == expected
            assert batched.batcher().stats.largest == len(ALERTS)
        finally:
            batched.close()


def test_batched_scores_match_one_at_a_time_in_float32(tiny_dir: Path) -> None:
    alone, batched = _clients(tiny_dir)
    try:
        prompts: list[Any] = [_messages(a) for a in ALERTS[:4]]
        prompts += [f"Alert: {a}\nVerdict:" for a in ALERTS[4:]]
        expected = [alone.score_labels(p, LABELS) for p in prompts]
        got = _concurrently([lambda p=p: batched.score_labels(p, LABELS) for p in prompts])
        for exp, out in zip(expected, got, strict=True):
            assert out.keys() == exp.keys()
            for label in LABELS:
                assert out[label] == pytest.approx(exp[label], abs=1e-4)
        assert batched.batcher().stats.largest == len(prompts)
    finally:
        batched.close()


def test_generation_and_scoring_can_share_a_gathering_window(tiny_dir: Path) -> None:
    alone, batched = _clients(tiny_dir, size=2)
    try:
        msgs = _messages(ALERTS[0])
        expected = [alone.choose(msgs, OPTIONS), alone.score_labels(msgs, LABELS)]
        got = _concurrently(
            [lambda: batched.choose(msgs, OPTIONS), lambda: batched.score_labels(msgs, LABELS)]
        )
        assert got[0] == expected[0]
        assert got[1] == pytest.approx(expected[1], abs=1e-4)
    finally:
        batched.close()


def test_a_closed_engine_refuses_new_work(tiny_dir: Path) -> None:
    from socflow.model.batching import BatchingEngine

    _, batched = _clients(tiny_dir)
    loaded = batched.load()
    engine = BatchingEngine(loaded.model, device="cpu", eos_ids=loaded.eos_ids, pad_id=loaded.pad_id)
    assert len(engine.generate([5, 6, 7], 3)) <= 3
    engine.close()
    with pytest.raises(ModelError):
        engine.generate([5, 6, 7], 3)
    with pytest.raises(ModelError):
        engine.label_logprobs([5, 6], [[]])


def test_the_factory_passes_the_batching_settings(tiny_dir: Path) -> None:

    from socflow.model.factory import build_model_client
    from socflow.settings import ModelSettings

    base = ModelSettings(backend="transformers", name=str(tiny_dir), device="cpu")
    assert build_model_client(base, None).batching is False  # type: ignore[attr-defined]
    settings = base.model_copy(update={"batching": True, "batch_max_size": 4, "batch_wait_ms": 5.0})
    client = build_model_client(settings, None)
    assert (client.batching, client.batch_max_size, client.batch_wait_ms) == (True, 4, 5.0)  # type: ignore[attr-defined]
