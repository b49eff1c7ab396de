"""The ``endpoint`` backend: a model served by an OpenAI-compatible server (vLLM first), over HTTP.

The server batches (vLLM's continuous batching), so workers stay light: no torch in this module. What is
sent (vLLM >= 0.12; the removed ``guided_*`` fields are never sent):

- ``generate``: ``POST /v1/chat/completions``
  ``{model, messages, max_tokens, temperature: 0, repetition_penalty}``;
- ``generate_structured``: the same plus
  ``response_format: {type: json_schema, json_schema: {name, schema, strict: true}}``;
- ``choose``: the same plus the top-level ``structured_outputs: {choice: [...]}`` (what the OpenAI SDK
  sends for ``extra_body={"structured_outputs": ...}``); the reply is the option text;
- ``score_labels``: ``POST /tokenize`` (the prompt, or the messages through the chat template; then each
  label), then one ``POST /v1/completions`` with the token-id prompts ``prompt + label``,
  ``echo: true, logprobs: 1, max_tokens: 1``, reading the echoed ``token_logprobs``.

Structured replies go through the shared validate -> one repair -> ``StructuredOutputError`` path
(``socflow.model.structured.run_structured``); every call writes one ``model_calls`` row.
``score_labels`` computes exactly what the in-process backend does (mean label-token log-probability
after the prompt, softmax over labels) from the echoed prompt log-probabilities; a server without
``/tokenize`` or prompt log-probabilities gets ``ModelUnavailable`` saying scoring needs the in-process
backend.

Errors (all ``ModelError``)::

    ModelError
    ├── EndpointRejectedError      a 4xx answer (bad request, unknown model): not retried
    ├── EndpointProtocolError      a 2xx answer that is not the OpenAI shape
    └── ModelUnavailable
        └── EndpointUnavailableError   5xx / 429 / connection failure after the retries (also a
            │                          ``TransientError``: the runner retries the node, then the run)
            └── EndpointTimeoutError   the server did not answer within ``timeout_seconds``, after the retries

Timeouts, connection failures, 429 and 5xx are retried ``max_retries`` times with exponential backoff
(``backoff_seconds * 2**n``, or the server's ``Retry-After`` when shorter than ``max_backoff_seconds``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from socflow.errors import ModelError, ModelUnavailable, TransientError
from socflow.model.base import Message
from socflow.model.driver import DrivenModel, softmax
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.schema import BoundedSchema

T = TypeVar("T", bound=BaseModel)

REPETITION_PENALTY = 1.2
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
SCORING_NEEDS_IN_PROCESS = (
    "scoring needs the in-process backend (SOCFLOW_MODEL__BACKEND=transformers) or a server that offers "
    "/tokenize and prompt log-probabilities (vLLM does)"
)


class EndpointRejectedError(ModelError):
    code = "endpoint_rejected"


class EndpointProtocolError(ModelError):
    code = "endpoint_protocol"


class EndpointUnavailableError(ModelUnavailable, TransientError):
    code = "endpoint_unavailable"


class EndpointTimeoutError(EndpointUnavailableError):
    code = "endpoint_timeout"


def _schema_name(name: str) -> str:
    """OpenAI's json_schema ``name``: letters, digits, ``_`` and ``-``, at most 64 characters."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "schema"


class EndpointModel(DrivenModel):
    """A ``ModelClient`` over an OpenAI-compatible HTTP server (vLLM)."""

    backend = "endpoint"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout_seconds: float = 120.0,
        max_new_tokens: int = 256,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        repetition_penalty: float = REPETITION_PENALTY,
        api_key: str | None = None,
        recorder: ModelCallRecorder | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ModelUnavailable("the endpoint backend needs SOCFLOW_MODEL__ENDPOINT_URL")
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[: -len("/v1")]
        super().__init__(
            model, recorder=recorder, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty
        )
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._context: int | None = None  # max_model_len from /v1/models, once asked (0: not said)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout_seconds, headers=headers, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # -- the prompt budget -----------------------------------------------------------------------------------

    def _context_length(self) -> int | None:
        """``max_model_len`` of this model in the server's ``GET /v1/models`` (vLLM), asked once; ``None``
        when the server does not say (then only ``SOCFLOW_MODEL__CONTEXT_TOKENS`` bounds prompts)."""
        if self._context is None:
            found = 0
            try:
                response = self._http.get("/v1/models")
                models = response.json().get("data") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                models = None
            if isinstance(models, list):
                entries = [m for m in models if isinstance(m, dict)]
                mine = [m for m in entries if m.get("id") == self.name] or entries[:1]
                value = mine[0].get("max_model_len") if mine else None
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    found = value
            self._context = found
        return self._context or None

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """The server's ``/tokenize`` of the templated messages; an upper estimate where it has none."""
        try:
            return len(self._tokenize(messages, CallRecord("count_tokens", self.backend, self.name)))
        except ModelError:
            return super().count_tokens(messages)

    def __enter__(self) -> EndpointModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], rec: CallRecord) -> dict[str, Any]:
        """POST with retries on timeouts, connection errors, 429 and 5xx; the JSON object answered."""
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            rec.parameters["http_attempts"] = rec.parameters.get("http_attempts", 0) + 1
            delay = self.backoff_seconds * 2**attempt
            try:
                response = self._http.post(path, json=body)
            except httpx.TimeoutException as exc:
                last = EndpointTimeoutError(
                    f"{path}: no answer within {self.timeout_seconds:g} s (attempt {attempt + 1})"
                )
                last.__cause__ = exc
            except httpx.TransportError as exc:
                last = EndpointUnavailableError(f"{path}: {type(exc).__name__} (attempt {attempt + 1})")
                last.__cause__ = exc
            else:
                if response.status_code in RETRY_STATUS:
                    last = EndpointUnavailableError(
                        f"{path}: HTTP {response.status_code} (attempt {attempt + 1})"
                    )
                    delay = _retry_after(response, delay)
                elif response.status_code >= 400:
                    raise EndpointRejectedError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
                else:
                    try:
                        payload = response.json()
                    except ValueError as exc:
                        raise EndpointProtocolError(f"{path}: the answer is not JSON") from exc
                    if not isinstance(payload, dict):
                        raise EndpointProtocolError(f"{path}: the answer is not a JSON object")
                    return payload
            if attempt < self.max_retries:
                time.sleep(min(delay, self.max_backoff_seconds))
        assert last is not None
        raise last

    def _fit_budget(self, messages: Sequence[Message], max_tokens: int, rec: CallRecord) -> int:
        """``max_tokens`` cut to what the context window leaves after the prompt: a server rejects a request
        whose prompt plus budget exceed it (a bounded schema's worst case can). The prompt is counted by the
        server's ``/tokenize`` only when a rough count says it might not fit."""
        context = self._context_length()
        rough = sum(len(m["content"]) for m in messages) // 4 + 16 * len(messages)
        if context is None or max_tokens + rough < context * 3 // 4:
            return max_tokens
        try:
            prompt = len(self._tokenize(messages, rec))
        except ModelUnavailable:
            return max_tokens
        fitted = max(1, min(max_tokens, context - prompt - 1))
        if fitted < max_tokens:
            rec.parameters["max_new_tokens_fitted"] = fitted
        return fitted

    def _chat(self, messages: Sequence[Message], max_tokens: int, rec: CallRecord, **extra: Any) -> str:
        max_tokens = self._fit_budget(messages, max_tokens, rec)
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
            "repetition_penalty": self.repetition_penalty,
            **extra,
        }
        payload = self._post("/v1/chat/completions", body, rec)
        try:
            choice = payload["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointProtocolError("chat completion without choices[0].message.content") from exc
        usage = payload.get("usage") or {}
        rec.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        rec.completion_tokens += int(usage.get("completion_tokens") or 0)
        if rec.model_revision is None and payload.get("system_fingerprint"):
            rec.model_revision = str(payload["system_fingerprint"])
        return "" if content is None else str(content)

    # -- DrivenModel hooks (the ModelClient methods are socflow.model.driver.DrivenModel's) ---------------

    def _params(self, method: str) -> dict[str, Any]:
        params: dict[str, Any] = {"endpoint": self.base_url}
        if method == "generate_structured":
            params |= {"constrained": True, "structured_outputs": "response_format.json_schema"}
        elif method == "choose":
            params |= {"constrained": True, "structured_outputs": "choice"}
        elif method == "score_labels":
            return params | {"score": "mean_token_logprob_softmax", "via": "prompt_logprobs"}
        return params | {"repetition_penalty": self.repetition_penalty}

    def render(self, messages: Sequence[Message]) -> str:
        return _render(messages)

    def _complete(self, messages: Sequence[Message], max_new: int, rec: CallRecord) -> str:
        return self._chat(messages, max_new, rec)

    def _structured_attempt(
        self, schema: type[BaseModel], bounded: BoundedSchema, rec: CallRecord
    ) -> Callable[[Sequence[Message]], str]:
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(schema.__name__), "schema": bounded.schema, "strict": True},
        }
        return lambda msgs: self._chat(msgs, bounded.token_budget, rec, response_format=response_format)

    def _choice_attempt(self, messages: Sequence[Message], options: tuple[str, ...], rec: CallRecord) -> str:
        budget = max(len(o.encode()) for o in options) + 8
        rec.parameters["max_new_tokens"] = budget
        return self._chat(messages, budget, rec, structured_outputs={"choice": list(options)})

    def _scores(
        self, prompt: str | Sequence[Message], labels: tuple[str, ...], rec: CallRecord
    ) -> dict[str, float]:
        prompt_ids = self._tokenize(prompt, rec)
        label_ids = [self._tokenize(lab, rec, add_special_tokens=False) for lab in labels]
        if any(not ids for ids in label_ids):
            raise ModelError("a label tokenizes to nothing")
        rec.prompt_tokens = len(prompt_ids)
        rec.completion_tokens = sum(len(ids) for ids in label_ids)
        body = {
            "model": self.name,
            "prompt": [prompt_ids + ids for ids in label_ids],
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0,
        }
        payload = self._post("/v1/completions", body, rec)
        means = _label_means(payload, len(prompt_ids), label_ids)
        rec.raw_output = json.dumps({lab: m for lab, m in zip(labels, means, strict=True)})
        return softmax(labels, means)

    def _tokenize(
        self, text: str | Sequence[Message], rec: CallRecord, *, add_special_tokens: bool = True
    ) -> list[int]:
        """Token ids from the server's ``/tokenize`` (vLLM): a string as is, messages via the template."""
        body: dict[str, Any] = {"model": self.name}
        if isinstance(text, str):
            body.update(prompt=text, add_special_tokens=add_special_tokens)
        else:
            body.update(
                messages=[{"role": m["role"], "content": m["content"]} for m in text],
                add_generation_prompt=True,
                add_special_tokens=False,
            )
        try:
            payload = self._post("/tokenize", body, rec)
        except EndpointRejectedError as exc:  # 404: not vLLM
            raise ModelUnavailable(SCORING_NEEDS_IN_PROCESS) from exc
        tokens = payload.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ModelUnavailable(SCORING_NEEDS_IN_PROCESS)
        return [int(t) for t in tokens]


def _label_means(payload: dict[str, Any], n_prompt: int, label_ids: list[list[int]]) -> list[float]:
    """Mean echoed log-probability of each label's tokens (the positions right after the prompt)."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or len(choices) != len(label_ids):
        raise EndpointProtocolError(f"expected {len(label_ids)} completion choices")
    by_index = sorted(choices, key=lambda c: int(c.get("index", 0)) if isinstance(c, dict) else 0)
    means = []
    for choice, ids in zip(by_index, label_ids, strict=True):
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
        if not isinstance(values, list) or len(values) < n_prompt + len(ids):
            raise ModelUnavailable(SCORING_NEEDS_IN_PROCESS + ": the server sent no prompt log-probabilities")
        picked = values[n_prompt : n_prompt + len(ids)]
        if any(not isinstance(v, int | float) for v in picked):
            raise ModelUnavailable(SCORING_NEEDS_IN_PROCESS + ": the server sent no prompt log-probabilities")
        means.append(sum(float(v) for v in picked) / len(ids))
    return means


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _render(messages: Sequence[Message]) -> str:
    """The audit copy of a chat prompt (the server applies the chat template; we do not see it)."""
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], ensure_ascii=False)
