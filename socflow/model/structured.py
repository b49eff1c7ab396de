"""Structured output shared by every backend: schema instruction, parse, validate, one repair, typed failure.

``run_structured(attempt, messages, schema)`` asks ``attempt`` for raw text (constrained decoding when the
backend has it), parses it as JSON and validates it with pydantic. On failure it makes exactly one repair
attempt that shows the model its reply and the validation errors; if that fails too it raises
``StructuredOutputError`` (the graph turns it into ``needs_review``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from socflow.errors import StructuredOutputError
from socflow.model.base import Message

T = TypeVar("T", bound=BaseModel)

MAX_REPAIR_ECHO_CHARS = 2000
MAX_ERRORS_SHOWN = 5


def with_instruction(messages: Sequence[Message], instruction: str) -> list[Message]:
    """``messages`` with ``instruction`` appended to the last user message (or as a new user message)."""
    out: list[Message] = [Message(role=m["role"], content=m["content"]) for m in messages]
    for i in range(len(out) - 1, -1, -1):
        if out[i]["role"] == "user":
            out[i] = Message(role="user", content=f"{out[i]['content']}\n\n{instruction}")
            return out
    out.append(Message(role="user", content=instruction))
    return out


def schema_instruction(schema_json: str) -> str:
    return f"Reply with only a JSON object that matches this JSON schema:\n{schema_json}"


def choice_instruction(options: Sequence[str]) -> str:
    listed = "\n".join(f"- {o}" for o in options)
    return f"Reply with exactly one of these options, as a JSON string, and nothing else:\n{listed}"


def describe_error(exc: Exception) -> str:
    """A short, input-free description of a parse or validation error."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_input=False, include_url=False)[:MAX_ERRORS_SHOWN]:
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{loc}: {err['msg']}")
        more = exc.error_count() - len(parts)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at character {exc.pos})"
    return str(exc)


def repair_messages(messages: Sequence[Message], raw: str, error: str) -> list[Message]:
    return [
        *messages,
        Message(role="assistant", content=raw[:MAX_REPAIR_ECHO_CHARS]),
        Message(
            role="user",
            content=f"That reply was invalid: {error}. Reply again with only the corrected JSON.",
        ),
    ]


def parse_structured(raw: str, schema: type[T]) -> T:
    return schema.model_validate_json(raw.strip())


@dataclass
class StructuredResult:
    raws: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_structured(
    attempt: Callable[[Sequence[Message]], str],
    messages: Sequence[Message],
    schema: type[T],
    trace: StructuredResult | None = None,
) -> T:
    """Generate, validate, repair once, else ``StructuredOutputError``; ``trace`` collects attempts."""
    trace = trace if trace is not None else StructuredResult()
    current: Sequence[Message] = messages
    for attempt_no in (1, 2):
        raw = attempt(current)
        trace.raws.append(raw)
        try:
            return parse_structured(raw, schema)
        except (ValidationError, ValueError) as exc:
            error = describe_error(exc)
            trace.errors.append(error)
            if attempt_no == 2:
                raise StructuredOutputError(
                    f"{schema.__name__}: output still invalid after one repair attempt: {error}"
                ) from exc
            current = repair_messages(messages, raw, error)
    raise AssertionError("unreachable")  # pragma: no cover


def normalize_scores(raw: dict[str, Any], labels: Sequence[str]) -> dict[str, float]:
    """Scores for exactly ``labels`` (missing ones 0), summing to 1; else ``StructuredOutputError``."""
    unknown = [k for k in raw if k not in labels]
    if unknown:
        raise StructuredOutputError(f"scores for labels that were not asked for: {unknown[:5]}")
    values: dict[str, float] = {}
    for label in labels:
        value = raw.get(label, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
            raise StructuredOutputError(f"score for {label!r} is not a non-negative number")
        values[label] = float(value)
    total = sum(values.values())
    if not total > 0 or total == float("inf"):
        raise StructuredOutputError("scores do not have a positive finite total")
    return {k: v / total for k, v in values.items()}


def check_options(options: Sequence[str], what: str = "options") -> tuple[str, ...]:
    from socflow.errors import ModelError

    opts = tuple(options)
    if not opts:
        raise ModelError(f"no {what} given")
    if len(set(opts)) != len(opts):
        raise ModelError(f"duplicate {what}")
    if any(not isinstance(o, str) or not o for o in opts):
        raise ModelError(f"{what} must be non-empty strings")
    return opts
