"""The one structured-output driver every backend calls (transformers, endpoint, scripted).

A backend brings what differs: how one attempt turns messages into raw text (constrained decoding in
process, structured outputs over HTTP, a script), how a prompt is rendered for the audit row, and what it
records before the first attempt (the model revision). The driver does the rest, the same way for all:

- the schema (or choice) instruction appended to the last user message;
- exactly one ``model_calls`` row per call, success or failure (``recorder.audited``);
- validation with pydantic, one repair attempt that shows the model its reply and the errors, then a typed
  ``StructuredOutputError`` (``structured.run_structured``), written once, on the row;
- on the row: the last raw output in ``raw_output``; a repaired call keeps its first raw output too
  (``parameters.first_raw_output``), with ``parameters.attempts`` and ``parameters.validation_errors``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from socflow.errors import StructuredOutputError
from socflow.model.base import CallContext, Message
from socflow.model.budget import estimate_tokens
from socflow.model.context import resolve_context
from socflow.model.recorder import CallRecord, ModelCallRecorder, audited
from socflow.model.schema import BoundedSchema, bounded_schema
from socflow.model.structured import (
    StructuredResult,
    check_options,
    choice_instruction,
    run_structured,
    schema_instruction,
    with_instruction,
)

T = TypeVar("T", bound=BaseModel)

Attempt = Callable[[Sequence[Message]], str]
Render = Callable[[Sequence[Message]], str]
Prepare = Callable[[CallRecord], None]


def structured_call(
    recorder: ModelCallRecorder | None,
    rec: CallRecord,
    messages: Sequence[Message],
    schema: type[T],
    schema_json: str,
    attempt: Attempt,
    *,
    render: Render,
    prepare: Prepare | None = None,
) -> T:
    """Ask ``attempt`` for a ``schema`` object: instruction, validation, one repair, typed failure."""
    with audited(recorder, rec):
        prompted = with_instruction(messages, schema_instruction(schema_json))
        rec.prompt = render(prompted)
        if prepare is not None:
            prepare(rec)
        trace = StructuredResult()
        try:
            result = run_structured(attempt, prompted, schema, trace)
        finally:
            rec.raw_output = trace.raws[-1] if trace.raws else None
            rec.parameters["attempts"] = len(trace.raws)
            if len(trace.raws) > 1:
                rec.parameters["first_raw_output"] = trace.raws[0]
            if trace.errors:
                rec.parameters["validation_errors"] = trace.errors
        rec.parsed_output = result.model_dump(mode="json")
        return result


def parse_choice(text: str, options: Sequence[str]) -> str:
    """The option ``text`` names, as is or as a JSON string; else ``StructuredOutputError``."""
    choice: Any = text.strip()
    if choice not in options:
        with contextlib.suppress(ValueError):
            choice = json.loads(text)
    if not isinstance(choice, str) or choice not in options:
        raise StructuredOutputError(f"choice {text[:80]!r} is not one of the {len(options)} options")
    return choice


def choice_call(
    recorder: ModelCallRecorder | None,
    rec: CallRecord,
    messages: Sequence[Message],
    options: Sequence[str],
    attempt: Callable[[Sequence[Message], tuple[str, ...]], str],
    *,
    render: Render,
    prepare: Callable[[CallRecord, tuple[str, ...]], None] | None = None,
) -> str:
    """Ask ``attempt`` to pick one of ``options`` (no repair: a wrong pick is a typed failure); one row."""
    opts = tuple(options)
    with audited(recorder, rec):
        check_options(opts)
        prompted = with_instruction(messages, choice_instruction(opts))
        rec.prompt = render(prompted)
        if prepare is not None:
            prepare(rec, opts)
        text = attempt(prompted, opts)
        rec.raw_output = text
        choice = parse_choice(text, opts)
        rec.parsed_output = {"choice": choice}
        return choice


def softmax(labels: Sequence[str], means: Sequence[float]) -> dict[str, float]:
    """Label scores from mean label-token log-probabilities (softmax over the labels)."""
    top = max(means)
    exp = [math.exp(m - top) for m in means]
    total = sum(exp)
    return {lab: e / total for lab, e in zip(labels, exp, strict=True)}


class DrivenModel:
    """The ``ModelClient`` methods, written once over a backend's hooks (one ``model_calls`` row a call).

    A backend sets ``backend``, calls ``__init__`` (name, recorder, token budget) and implements the hooks:
    ``render`` (a prompt as the audit row shows it), ``_complete`` (free text), ``_structured_attempt``
    (one attempt at a bounded schema), ``_choice_attempt`` and ``_scores``. ``_prepare`` (before any
    attempt, inside the audited block) and ``_params`` (parameters recorded on every row) are optional.
    """

    backend: str

    def __init__(
        self,
        name: str,
        *,
        recorder: ModelCallRecorder | None,
        max_new_tokens: int = 256,
        repetition_penalty: float = 1.2,
    ) -> None:
        self.name = name
        self.recorder = recorder
        self.max_new_tokens = max_new_tokens
        self.repetition_penalty = repetition_penalty
        self.context_tokens: int | None = None  # an operator's override of the backend's context length

    # -- the prompt budget (``socflow.model.budget``) --------------------------------------------------------

    def context_length(self) -> int | None:
        """Tokens of context (prompt plus answer): the override, else what the backend knows, else None."""
        return self.context_tokens or self._context_length()

    def _context_length(self) -> int | None:
        return None

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of ``messages`` as this backend prompts them (an upper estimate without a tokenizer)."""
        return estimate_tokens(self.render(messages))

    @property
    def model_id(self) -> str:
        return self.name

    # -- hooks ---------------------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        raise NotImplementedError

    def _params(self, method: str) -> dict[str, Any]:
        return {}

    def _prepare(self, rec: CallRecord) -> None:
        return None

    def _complete(self, messages: Sequence[Message], max_new: int, rec: CallRecord) -> str:
        raise NotImplementedError

    def _structured_attempt(
        self, schema: type[BaseModel], bounded: BoundedSchema, rec: CallRecord
    ) -> Attempt:
        raise NotImplementedError

    def _choice_attempt(self, messages: Sequence[Message], options: tuple[str, ...], rec: CallRecord) -> str:
        raise NotImplementedError

    def _scores(
        self, prompt: str | Sequence[Message], labels: tuple[str, ...], rec: CallRecord
    ) -> dict[str, float]:
        raise NotImplementedError

    # -- ModelClient -------------------------------------------------------------------------------------

    def _record(self, method: str, ctx: CallContext | None, params: dict[str, Any]) -> CallRecord:
        return CallRecord(
            method=method,
            backend=self.backend,
            model_id=self.name,
            ctx=resolve_context(ctx),
            parameters={**self._params(method), **params},
        )

    def generate(
        self,
        messages: Sequence[Message],
        *,
        ctx: CallContext | None = None,
        max_new_tokens: int | None = None,
    ) -> str:
        max_new = max_new_tokens or self.max_new_tokens
        rec = self._record("generate", ctx, {"max_new_tokens": max_new})
        with audited(self.recorder, rec):
            rec.prompt = self.render(messages)
            self._prepare(rec)
            text = self._complete(messages, max_new, rec)
            rec.raw_output = text
            return text

    def generate_structured(
        self, messages: Sequence[Message], schema: type[T], *, ctx: CallContext | None = None
    ) -> T:
        bounded = bounded_schema(schema)  # raises UnboundedSchemaError before any row: a programming error
        rec = self._record(
            "generate_structured", ctx, {"schema": schema.__name__, "max_new_tokens": bounded.token_budget}
        )
        attempt = self._structured_attempt(schema, bounded, rec)
        return structured_call(
            self.recorder,
            rec,
            messages,
            schema,
            bounded.schema_json,
            attempt,
            render=self.render,
            prepare=self._prepare,
        )

    def choose(
        self, messages: Sequence[Message], options: Sequence[str], *, ctx: CallContext | None = None
    ) -> str:
        rec = self._record("choose", ctx, {"options": list(options)})
        return choice_call(
            self.recorder,
            rec,
            messages,
            options,
            lambda msgs, opts: self._choice_attempt(msgs, opts, rec),
            render=self.render,
            prepare=lambda r, _: self._prepare(r),
        )

    def score_labels(
        self, prompt: str | Sequence[Message], labels: Sequence[str], *, ctx: CallContext | None = None
    ) -> dict[str, float]:
        labs = tuple(labels)
        rec = self._record("score_labels", ctx, {"labels": list(labs)})
        with audited(self.recorder, rec):
            check_options(labs, "labels")
            rec.prompt = prompt if isinstance(prompt, str) else self.render(prompt)
            self._prepare(rec)
            scores = self._scores(prompt, labs, rec)
            rec.parsed_output = {"scores": scores}
            return scores
