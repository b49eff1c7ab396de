"""The scripted double: replies chosen by node name or prompt content, never by call order.

    model = ScriptedModel([
        ScriptRule({"verdict": "malicious", ...}, node="assess_alert"),
        ScriptRule("T1003.001", node="map_attack", method="choose"),
        ScriptRule({"malicious": 0.9, "benign": 0.1}, method="score_labels"),
    ])

The first rule whose every given condition matches wins: ``node`` (``CallContext.node`` or LangGraph's
``langgraph_node`` metadata), ``contains`` (a substring of the rendered prompt) and ``method``. A reply is a
``str`` (raw text; JSON for ``generate_structured``, one of the options for ``choose``), a ``dict``
(structured output, or label scores for ``score_labels``), a pydantic model, or a callable
``(messages, method, options_or_schema) -> reply``. Structured replies go through the same
parse-validate-repair-fail path as the real backends. An unscripted call raises ``UnscriptedCallError``
naming the node and the tail of the prompt. Every call writes one ``model_calls`` row when a recorder is
given.
``ScriptedModel.from_model_calls(rows)`` replays recorded calls.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.errors import StructuredOutputError, UnscriptedCallError
from socflow.model.base import CallContext, Message
from socflow.model.context import resolve_context
from socflow.model.recorder import CallRecord, ModelCallRecorder, audited
from socflow.model.schema import bounded_schema
from socflow.model.structured import (
    StructuredResult,
    check_options,
    choice_instruction,
    normalize_scores,
    run_structured,
    schema_instruction,
    with_instruction,
)
from socflow.tables import ModelCall

T = TypeVar("T", bound=BaseModel)

METHODS = ("generate", "generate_structured", "choose", "score_labels")
PROMPT_TAIL_CHARS = 300
_TOKEN = re.compile(r"\w+|[^\w\s]")


def approx_tokens(text: str) -> int:
    """A tokenizer-free token count (words and punctuation) for the scripted backend's audit rows."""
    return len(_TOKEN.findall(text))


def render_messages(messages: Sequence[Message]) -> str:
    return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages)


@dataclass(frozen=True)
class ScriptRule:
    reply: Any
    node: str | None = None
    contains: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")

    def matches(self, node: str | None, prompt: str, method: str) -> bool:
        if self.node is not None and self.node != node:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.contains is None or self.contains in prompt


@dataclass(frozen=True)
class ScriptedCall:
    """A call the double answered (for assertions in tests)."""

    node: str | None
    method: str
    prompt: str


class ScriptedModel:
    """A ``ModelClient`` that answers from rules; see the module docstring."""

    backend = "scripted"

    def __init__(
        self,
        rules: Sequence[ScriptRule],
        *,
        recorder: ModelCallRecorder | None = None,
        model_id: str = "scripted",
    ) -> None:
        self.rules = list(rules)
        self.recorder = recorder
        self._model_id = model_id
        self.calls: list[ScriptedCall] = []

    @property
    def model_id(self) -> str:
        return self._model_id

    def with_recorder(self, recorder: ModelCallRecorder | None) -> ScriptedModel:
        """The same rules writing to ``recorder``; the twin's calls land in this model's ``calls`` too."""
        twin = ScriptedModel(self.rules, recorder=recorder, model_id=self._model_id)
        twin.calls = self.calls
        return twin

    # -- rule lookup -------------------------------------------------------------------------------------

    def _reply(self, node: str | None, messages: Sequence[Message], method: str, arg: Any) -> Any:
        prompt = render_messages(messages)
        for rule in self.rules:
            if rule.matches(node, prompt, method):
                reply = rule.reply
                return reply(list(messages), method, arg) if callable(reply) else reply
        tail = prompt[-PROMPT_TAIL_CHARS:].replace("\n", "\\n")
        raise UnscriptedCallError(f"no script rule for {method} at node {node!r}; prompt ends: ...{tail}")

    def _record(
        self, method: str, ctx: CallContext | None, prompt: str, params: dict[str, Any]
    ) -> CallRecord:
        resolved = resolve_context(ctx)
        self.calls.append(ScriptedCall(node=resolved.node, method=method, prompt=prompt))
        return CallRecord(
            method=method,
            backend=self.backend,
            model_id=self._model_id,
            ctx=resolved,
            parameters=params,
            prompt=prompt,
            prompt_tokens=approx_tokens(prompt),
        )

    # -- ModelClient --------------------------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[Message],
        *,
        ctx: CallContext | None = None,
        max_new_tokens: int | None = None,
    ) -> str:
        prompt = render_messages(messages)
        rec = self._record("generate", ctx, prompt, {"max_new_tokens": max_new_tokens})
        with audited(self.recorder, rec):
            reply = self._reply(rec.ctx.node, messages, "generate", None)
            text = _as_text(reply)
            rec.raw_output = text
            rec.completion_tokens = approx_tokens(text)
            return text

    def generate_structured(
        self, messages: Sequence[Message], schema: type[T], *, ctx: CallContext | None = None
    ) -> T:
        with_schema = with_instruction(messages, schema_instruction(bounded_schema(schema).schema_json))
        rec = self._record(
            "generate_structured", ctx, render_messages(with_schema), {"schema": schema.__name__}
        )
        trace = StructuredResult()
        with audited(self.recorder, rec):

            def attempt(msgs: Sequence[Message]) -> str:
                text = _as_text(self._reply(rec.ctx.node, msgs, "generate_structured", schema))
                rec.completion_tokens += approx_tokens(text)
                return text

            try:
                result = run_structured(attempt, with_schema, schema, trace)
            finally:
                rec.raw_output = trace.raws[-1] if trace.raws else None
                rec.parameters["attempts"] = len(trace.raws)
                if trace.errors:
                    rec.parameters["validation_errors"] = trace.errors
            rec.parsed_output = result.model_dump(mode="json")
            return result

    def choose(
        self, messages: Sequence[Message], options: Sequence[str], *, ctx: CallContext | None = None
    ) -> str:
        opts = tuple(options)
        prompted = with_instruction(messages, choice_instruction(opts))
        rec = self._record("choose", ctx, render_messages(prompted), {"options": list(opts)})
        with audited(self.recorder, rec):
            check_options(opts)
            text = _as_text(self._reply(rec.ctx.node, prompted, "choose", opts))
            rec.raw_output = text
            rec.completion_tokens = approx_tokens(text)
            choice = text.strip()
            if choice not in opts:
                with contextlib.suppress(ValueError):  # a JSON string too, as the real backend produces
                    choice = json.loads(choice)
            if choice not in opts:
                raise StructuredOutputError(f"choice {text[:80]!r} is not one of the {len(opts)} options")
            rec.parsed_output = {"choice": choice}
            return str(choice)

    def score_labels(
        self, prompt: str | Sequence[Message], labels: Sequence[str], *, ctx: CallContext | None = None
    ) -> dict[str, float]:
        messages = [Message(role="user", content=prompt)] if isinstance(prompt, str) else list(prompt)
        rendered = prompt if isinstance(prompt, str) else render_messages(messages)
        labs = tuple(labels)
        rec = self._record("score_labels", ctx, rendered, {"labels": list(labs)})
        with audited(self.recorder, rec):
            check_options(labs, "labels")
            reply = self._reply(rec.ctx.node, messages, "score_labels", labs)
            if isinstance(reply, str):
                reply = {reply: 1.0} if reply in labs else _json_object(reply)
            if not isinstance(reply, dict):
                raise StructuredOutputError("a score_labels reply must be a dict of label -> score")
            rec.raw_output = json.dumps(reply, default=str)
            rec.completion_tokens = len(labs)
            scores = normalize_scores(reply, labs)
            rec.parsed_output = {"scores": scores}
            return scores

    # -- replay ---------------------------------------------------------------------------------------------

    @classmethod
    def from_model_calls(
        cls, rows: Iterable[ModelCall], *, recorder: ModelCallRecorder | None = None, model_id: str = "replay"
    ) -> ScriptedModel:
        """A double that replays recorded ``model_calls`` rows, matched by node and method.

        Several recordings for the same node and method are told apart by prompt similarity, not order.
        Failed calls are skipped: a replay reproduces what the model answered.
        """
        groups: dict[tuple[str | None, str], list[ModelCall]] = {}
        for row in rows:
            if row.error is None:
                groups.setdefault((row.node, row.method), []).append(row)
        rules = [
            ScriptRule(_replay_reply(group), node=node, method=method)
            for (node, method), group in groups.items()
            if node is not None
        ]
        rules += [
            ScriptRule(_replay_reply(group), method=method)
            for (node, method), group in groups.items()
            if node is None
        ]
        return cls(rules, recorder=recorder, model_id=model_id)

    @classmethod
    def replay_run(
        cls, session_factory: sessionmaker[Session], run_id: str, *, recorder: ModelCallRecorder | None = None
    ) -> ScriptedModel:
        """``from_model_calls`` over every recorded call of one run."""
        with session_factory() as session:
            rows = session.scalars(select(ModelCall).where(ModelCall.run_id == run_id).order_by(ModelCall.id))
            return cls.from_model_calls(list(rows), recorder=recorder, model_id=f"replay:{run_id}")


def _recorded_reply(row: ModelCall) -> Any:
    parsed = row.parsed_output or {}
    if row.method == "choose" and "choice" in parsed:
        return parsed["choice"]
    if row.method == "score_labels" and "scores" in parsed:
        return parsed["scores"]
    if row.method == "generate_structured" and row.parsed_output is not None:
        return row.parsed_output
    return row.raw_output or ""


def _replay_reply(rows: list[ModelCall]) -> Any:
    if len(rows) == 1:
        return _recorded_reply(rows[0])

    def closest(messages: list[Message], _method: str, _arg: Any) -> Any:
        prompt = render_messages(messages)
        best = max(rows, key=lambda r: difflib.SequenceMatcher(None, r.prompt, prompt).quick_ratio())
        return _recorded_reply(best)

    return closest


def _as_text(reply: Any) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    if isinstance(reply, dict | list | int | float | bool) or reply is None:
        return json.dumps(reply)
    raise StructuredOutputError(f"unsupported scripted reply type {type(reply).__name__}")


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StructuredOutputError("a score_labels reply string must be a label or a JSON object") from exc


ReplyFn = Callable[[list[Message], str, Any], Any]
