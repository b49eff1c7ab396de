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
from socflow.model.base import Message
from socflow.model.driver import DrivenModel
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.schema import BoundedSchema
from socflow.model.structured import (
    normalize_scores,
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


class ScriptedModel(DrivenModel):
    """A ``ModelClient`` that answers from rules; see the module docstring."""

    backend = "scripted"

    def __init__(
        self,
        rules: Sequence[ScriptRule],
        *,
        recorder: ModelCallRecorder | None = None,
        model_id: str = "scripted",
    ) -> None:
        super().__init__(model_id, recorder=recorder)
        self.rules = list(rules)
        self.calls: list[ScriptedCall] = []

    def with_recorder(self, recorder: ModelCallRecorder | None) -> ScriptedModel:
        """The same rules writing to ``recorder``; the twin's calls land in this model's ``calls`` too."""
        twin = ScriptedModel(self.rules, recorder=recorder, model_id=self.name)
        twin.calls = self.calls
        twin.context_tokens = self.context_tokens
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

    # -- DrivenModel hooks (the ModelClient methods are socflow.model.driver.DrivenModel's) ---------------

    def render(self, messages: Sequence[Message]) -> str:
        return render_messages(messages)

    def _prepare(self, rec: CallRecord) -> None:
        """Note the call for the test's assertions; count the prompt's tokens."""
        rec.prompt_tokens = approx_tokens(rec.prompt)
        self.calls.append(ScriptedCall(node=rec.ctx.node, method=rec.method, prompt=rec.prompt))

    def _answer(self, rec: CallRecord, messages: Sequence[Message], arg: Any) -> str:
        text = _as_text(self._reply(rec.ctx.node, messages, rec.method, arg))
        rec.completion_tokens += approx_tokens(text)
        return text

    def _complete(self, messages: Sequence[Message], max_new: int, rec: CallRecord) -> str:
        return self._answer(rec, messages, None)

    def _structured_attempt(
        self, schema: type[BaseModel], bounded: BoundedSchema, rec: CallRecord
    ) -> Callable[[Sequence[Message]], str]:
        return lambda msgs: self._answer(rec, msgs, schema)

    def _choice_attempt(self, messages: Sequence[Message], options: tuple[str, ...], rec: CallRecord) -> str:
        return self._answer(rec, messages, options)

    def _scores(
        self, prompt: str | Sequence[Message], labels: tuple[str, ...], rec: CallRecord
    ) -> dict[str, float]:
        messages = [Message(role="user", content=prompt)] if isinstance(prompt, str) else list(prompt)
        reply = self._reply(rec.ctx.node, messages, "score_labels", labels)
        if isinstance(reply, str):
            reply = {reply: 1.0} if reply in labels else _json_object(reply)
        if not isinstance(reply, dict):
            raise StructuredOutputError("a score_labels reply must be a dict of label -> score")
        rec.raw_output = json.dumps(reply, default=str)
        rec.completion_tokens = len(labels)
        return normalize_scores(reply, labels)

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
