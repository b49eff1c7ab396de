"""How much prompt a model takes: its context window and the token count of a prompt.

Prompt builders ask :func:`prompt_budget` for the model's budget and trim what they put in (lowest-priority
evidence first) until ``count(messages) + answer_tokens <= context_tokens``, so a big case never fails a
run with a prompt over the context. Where the context is known:

- an operator's override, ``SOCFLOW_MODEL__CONTEXT_TOKENS`` (any backend);
- the transformers backend: the model config's ``max_position_embeddings``;
- the endpoint backend: the server's ``GET /v1/models`` ``max_model_len`` (vLLM reports it).

Counts are exact where a tokenizer is at hand (transformers; the endpoint's ``/tokenize``) and otherwise a
conservative estimate (:func:`estimate_tokens`, one token per 3 characters, never fewer than the words
and punctuation marks).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from socflow.errors import SocflowError
from socflow.model.base import Message

CHARS_PER_TOKEN = 3
_PIECES = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free upper estimate of the tokens of ``text``."""
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), len(_PIECES.findall(text)))


@dataclass(frozen=True)
class PromptBudget:
    """A model's context window and how it counts the tokens of a prompt (chat template included)."""

    context_tokens: int
    count: Callable[[Sequence[Message]], int]

    def fits(self, messages: Sequence[Message], answer_tokens: int) -> bool:
        return self.count(messages) + answer_tokens <= self.context_tokens


def prompt_budget(model: Any) -> PromptBudget | None:
    """The budget of ``model`` (a ``DrivenModel`` has ``context_length`` and ``count_tokens``); ``None``
    when the model does not say how long its context is."""
    length = getattr(model, "context_length", None)
    count = getattr(model, "count_tokens", None)
    if not callable(length) or not callable(count):
        return None
    try:
        tokens = length()
    except SocflowError:  # the model could not be asked (not loaded, endpoint down): no trimming here
        return None
    if not isinstance(tokens, int) or tokens <= 0:
        return None
    return PromptBudget(tokens, count)
