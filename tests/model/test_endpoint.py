"""The endpoint backend against a real local OpenAI-compatible test server (vLLM request shapes)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import ModelUnavailable, StructuredOutputError
from socflow.model.base import CallContext, Message
from socflow.model.endpoint import (
    EndpointModel,
    EndpointProtocolError,
    EndpointRejectedError,
    EndpointTimeoutError,
    EndpointUnavailableError,
)
from socflow.model.recorder import ModelCallRecorder
from socflow.model.schema import bounded_schema
from socflow.tables import ModelCall
from tests.servers.openai_compat import (
    OpenAICompatServer,
    Reply,
    chat_reply,
    echo_logprobs_reply,
    openai_compat_server,
    tokenize_text,
)


class Verdict(BaseModel):
    verdict: Literal["benign", "malicious"]
    summary: str = Field(pattern=r"^[ -~]{0,30}$")


PROMPT = [Message(role="user", content="5 failed logons for alice on WS123 then LSASS access")]
OPTIONS = ["T1059", "T1059.001", "T1059.003"]
CTX = CallContext(run_id="run-7", case_id=3, node="assess_alert")
CHAT = "/v1/chat/completions"


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with openai_compat_server() as srv:
        yield srv
        assert srv.violations == []


def _client(
    server: OpenAICompatServer, recorder: ModelCallRecorder | None = None, **kw: Any
) -> EndpointModel:
    kw.setdefault("backoff_seconds", 0.01)
    kw.setdefault("timeout_seconds", 5.0)
    return EndpointModel(server.url + "/v1", "fdtn-ai/Foundation-Sec-8B-Instruct", recorder=recorder, **kw)


def _rows(factory: sessionmaker[Session]) -> list[ModelCall]:
    with factory() as session:
        return list(session.scalars(select(ModelCall).order_by(ModelCall.id)).all())


def _one_row(factory: sessionmaker[Session], method: str) -> ModelCall:
    rows = _rows(factory)
    assert len(rows) == 1
    row = rows[0]
    assert (row.method, row.backend, row.run_id, row.case_id, row.node) == (
        method,
        "endpoint",
        "run-7",
        3,
        "assess_alert",
    )
    assert row.model_id == "fdtn-ai/Foundation-Sec-8B-Instruct"
    assert row.prompt and row.latency_ms > 0
    return row


def test_structured_output_sends_a_strict_json_schema(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, chat_reply('{"verdict":"malicious","summary":"lsass"}', prompt_tokens=40))
    with _client(server, ModelCallRecorder(factory)) as client:
        out = client.generate_structured(PROMPT, Verdict, ctx=CTX)
    assert out == Verdict(verdict="malicious", summary="lsass")

    (sent,) = server.seen(CHAT)
    bounded = bounded_schema(Verdict)
    assert sent["model"] == "fdtn-ai/Foundation-Sec-8B-Instruct"
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "schema": bounded.schema, "strict": True},
    }
    assert sent["max_tokens"] == bounded.token_budget
    assert sent["temperature"] == 0
    assert "structured_outputs" not in sent
    assert sent["messages"][-1]["content"].startswith(PROMPT[0]["content"])
    assert "JSON schema" in sent["messages"][-1]["content"]

    row = _one_row(factory, "generate_structured")
    assert row.error is None
    assert row.parsed_output == {"verdict": "malicious", "summary": "lsass"}
    assert (row.prompt_tokens, row.completion_tokens) == (40, 5)
    assert row.parameters["attempts"] == 1
    assert row.parameters["http_attempts"] == 1


def test_choose_sends_structured_outputs_choice(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, chat_reply("T1059.001"))
    with _client(server, ModelCallRecorder(factory)) as client:
        assert client.choose(PROMPT, OPTIONS, ctx=CTX) == "T1059.001"
    (sent,) = server.seen(CHAT)
    assert sent["structured_outputs"] == {"choice": OPTIONS}
    assert "response_format" not in sent
    row = _one_row(factory, "choose")
    assert row.parsed_output == {"choice": "T1059.001"}
    assert row.raw_output == "T1059.001"


def test_choose_rejects_an_answer_outside_the_options(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, chat_reply("T1003"))
    with _client(server, ModelCallRecorder(factory)) as client, pytest.raises(StructuredOutputError):
        client.choose(PROMPT, OPTIONS, ctx=CTX)
    assert _one_row(factory, "choose").error_kind == "structured_output_invalid"


def test_503_then_success_is_retried(server: OpenAICompatServer, factory: sessionmaker[Session]) -> None:
    server.queue(CHAT, Reply({"error": "overloaded"}, status=503), chat_reply("a summary"))
    with _client(server, ModelCallRecorder(factory)) as client:
        assert client.generate(PROMPT, ctx=CTX, max_new_tokens=32) == "a summary"
    assert len(server.seen(CHAT)) == 2
    row = _one_row(factory, "generate")
    assert row.error is None and row.raw_output == "a summary"
    assert row.parameters["http_attempts"] == 2
    assert server.seen(CHAT)[0]["max_tokens"] == 32


def test_503_every_time_fails_typed_after_the_retries(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, *[Reply({"error": "down"}, status=503) for _ in range(3)])
    client = _client(server, ModelCallRecorder(factory), max_retries=2)
    with client, pytest.raises(EndpointUnavailableError) as info:
        client.generate(PROMPT, ctx=CTX)
    assert isinstance(info.value, ModelUnavailable)
    assert len(server.seen(CHAT)) == 3
    row = _one_row(factory, "generate")
    assert row.error_kind == "endpoint_unavailable"
    assert row.parsed_output is None and row.raw_output is None


def test_a_slow_server_times_out_then_a_retry_succeeds(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, Reply(delay=3.0), chat_reply('{"verdict":"benign","summary":"backup"}'))
    with _client(server, ModelCallRecorder(factory), timeout_seconds=0.3) as client:
        out = client.generate_structured(PROMPT, Verdict, ctx=CTX)
    assert out.verdict == "benign"
    row = _one_row(factory, "generate_structured")
    assert row.error is None and row.parameters["http_attempts"] == 2


def test_a_server_that_never_answers_in_time_raises_a_timeout(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, Reply(delay=3.0), Reply(delay=3.0))
    client = _client(server, ModelCallRecorder(factory), timeout_seconds=0.3, max_retries=1)
    with client, pytest.raises(EndpointTimeoutError):
        client.choose(PROMPT, OPTIONS, ctx=CTX)
    row = _one_row(factory, "choose")
    assert row.error_kind == "endpoint_timeout"
    assert row.parameters["http_attempts"] == 2


def test_invalid_json_twice_repairs_once_then_fails_typed(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, chat_reply('{"verdict": "malic'), chat_reply('{"verdict":"maybe","summary":"x"}'))
    with _client(server, ModelCallRecorder(factory)) as client, pytest.raises(StructuredOutputError):
        client.generate_structured(PROMPT, Verdict, ctx=CTX)
    first, repair = server.seen(CHAT)
    assert repair["response_format"] == first["response_format"]
    assert repair["messages"][:-2] == first["messages"]
    assert repair["messages"][-2] == {"role": "assistant", "content": '{"verdict": "malic'}
    assert "invalid" in repair["messages"][-1]["content"]
    row = _one_row(factory, "generate_structured")
    assert row.error_kind == "structured_output_invalid"
    assert row.parameters["attempts"] == 2
    assert len(row.parameters["validation_errors"]) == 2
    assert row.raw_output == '{"verdict":"maybe","summary":"x"}'
    assert row.parameters["first_raw_output"] == '{"verdict": "malic'
    assert row.completion_tokens == 10 and row.parsed_output is None


def test_invalid_json_then_valid_repairs(server: OpenAICompatServer, factory: sessionmaker[Session]) -> None:
    server.queue(CHAT, chat_reply("not json"), chat_reply('{"verdict":"benign","summary":"ok"}'))
    with _client(server, ModelCallRecorder(factory)) as client:
        assert client.generate_structured(PROMPT, Verdict, ctx=CTX).summary == "ok"
    row = _one_row(factory, "generate_structured")
    assert row.error is None and row.parameters["attempts"] == 2
    assert row.parameters["first_raw_output"] == "not json"  # the repaired reply keeps the first one too
    assert row.raw_output == '{"verdict":"benign","summary":"ok"}'


def test_a_body_that_is_not_json_is_a_protocol_error_not_retried(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.queue(CHAT, Reply(raw=b'{"choices": [ oops'))
    with _client(server, ModelCallRecorder(factory)) as client, pytest.raises(EndpointProtocolError):
        client.generate(PROMPT, ctx=CTX)
    assert len(server.seen(CHAT)) == 1
    assert _one_row(factory, "generate").error_kind == "endpoint_protocol"


def test_4xx_is_rejected_without_retry(server: OpenAICompatServer, factory: sessionmaker[Session]) -> None:
    server.queue(CHAT, Reply({"error": {"message": "model not found"}}, status=404))
    with _client(server, ModelCallRecorder(factory)) as client, pytest.raises(EndpointRejectedError):
        client.generate(PROMPT, ctx=CTX)
    assert len(server.seen(CHAT)) == 1
    assert _one_row(factory, "generate").error_kind == "endpoint_rejected"


def _logprob(position: int, token: int) -> float:
    return -((token % 7) + 1) / 10.0


def test_score_labels_uses_echoed_prompt_logprobs(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.responders["/v1/completions"] = lambda body: echo_logprobs_reply(body["prompt"], _logprob)
    labels = ["benign", "malicious"]
    with _client(server, ModelCallRecorder(factory)) as client:
        scores = client.score_labels("Alert: LSASS access. Verdict:", labels, ctx=CTX)

    means = [sum(_logprob(0, t) for t in tokenize_text(lab)) / len(lab) for lab in labels]
    exp = [math.exp(m) for m in means]
    assert scores == pytest.approx({lab: e / sum(exp) for lab, e in zip(labels, exp, strict=True)}, abs=1e-12)

    tokenized = server.seen("/tokenize")
    assert tokenized[0] == {
        "model": "fdtn-ai/Foundation-Sec-8B-Instruct",
        "prompt": "Alert: LSASS access. Verdict:",
        "add_special_tokens": True,
    }
    assert [t["prompt"] for t in tokenized[1:]] == labels
    assert all(t["add_special_tokens"] is False for t in tokenized[1:])
    (completion,) = server.seen("/v1/completions")
    prompt_ids = tokenize_text("Alert: LSASS access. Verdict:")
    assert completion["prompt"] == [prompt_ids + tokenize_text(lab) for lab in labels]
    assert (completion["echo"], completion["logprobs"], completion["max_tokens"]) == (True, 1, 1)

    row = _one_row(factory, "score_labels")
    assert row.error is None
    assert row.parsed_output is not None and set(row.parsed_output["scores"]) == set(labels)
    assert json.loads(row.raw_output or "{}") == pytest.approx(dict(zip(labels, means, strict=True)))
    assert row.prompt_tokens == len(prompt_ids)


def test_score_labels_on_messages_tokenizes_with_the_chat_template(server: OpenAICompatServer) -> None:
    server.responders["/v1/completions"] = lambda body: echo_logprobs_reply(body["prompt"], _logprob)
    with _client(server) as client:
        scores = client.score_labels(PROMPT, ["benign", "malicious"])
    assert sum(scores.values()) == pytest.approx(1.0)
    first = server.seen("/tokenize")[0]
    assert first["messages"] == [dict(m) for m in PROMPT] and first["add_generation_prompt"] is True


def test_score_labels_without_logprobs_says_it_needs_the_in_process_backend(
    server: OpenAICompatServer, factory: sessionmaker[Session]
) -> None:
    server.responders["/v1/completions"] = lambda body: echo_logprobs_reply(body["prompt"], None)
    client = _client(server, ModelCallRecorder(factory))
    with client, pytest.raises(ModelUnavailable, match="in-process backend"):
        client.score_labels("prompt", ["benign", "malicious"], ctx=CTX)
    assert _one_row(factory, "score_labels").error_kind == "model_unavailable"


def test_score_labels_on_a_server_without_tokenize(server: OpenAICompatServer) -> None:
    del server.responders["/tokenize"]
    with _client(server) as client, pytest.raises(ModelUnavailable, match="in-process backend"):
        client.score_labels("prompt", ["benign", "malicious"])


def test_factory_builds_the_endpoint_backend(server: OpenAICompatServer) -> None:
    from socflow.model.factory import build_model_client
    from socflow.settings import ModelSettings

    settings = ModelSettings(
        backend="endpoint", name="fdtn-ai/Foundation-Sec-8B-Instruct", endpoint_url=server.url + "/v1/"
    )
    client = build_model_client(settings, None)
    assert isinstance(client, EndpointModel)
    assert client.base_url == server.url
    server.queue(CHAT, chat_reply("hello"))
    assert client.generate(PROMPT) == "hello"
    client.close()

    with pytest.raises(ModelUnavailable):
        build_model_client(ModelSettings(backend="endpoint", endpoint_url=""), None)


def test_the_prompt_budget_comes_from_the_server(server: OpenAICompatServer) -> None:
    """``max_model_len`` of ``GET /v1/models`` is the context (asked once); tokens are counted by the
    server's ``/tokenize`` through the chat template; an override wins."""
    from socflow.model.budget import prompt_budget

    with _client(server) as client:
        budget = prompt_budget(client)
        assert budget is not None and budget.context_tokens == 4096
        assert client.context_length() == 4096
        assert budget.count(PROMPT) > len(PROMPT[0]["content"])  # one token a character, template too
        assert server.seen("/tokenize")[-1]["messages"] == [dict(m) for m in PROMPT]
        client.context_tokens = 1024
        assert prompt_budget(client).context_tokens == 1024  # type: ignore[union-attr]


def test_a_server_without_tokenize_gets_an_estimate(server: OpenAICompatServer) -> None:
    from socflow.model.budget import estimate_tokens

    server.responders["/tokenize"] = lambda body: Reply({"error": "not found"}, status=404)
    with _client(server, max_retries=0) as client:
        assert client.count_tokens(PROMPT) == estimate_tokens(client.render(PROMPT))
