"""The interface every graph node uses to talk to a model.

Backends (``transformers``, ``endpoint``, ``scripted``) implement ``ModelClient``. Every call writes exactly
one ``model_calls`` row, success or failure. ``CallContext`` says which run, case and node made the call;
when omitted, backends read the node from LangGraph's ``langgraph_node`` run metadata where available.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class CallContext:
    run_id: str | None = None
    case_id: int | None = None
    node: str | None = None


class ModelClient(Protocol):
    """What graphs may ask of a model. Decisions come from structured calls, never free text."""

    @property
    def model_id(self) -> str: ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        ctx: CallContext | None = None,
        max_new_tokens: int | None = None,
    ) -> str: ...

    def generate_structured(
        self, messages: Sequence[Message], schema: type[T], *, ctx: CallContext | None = None
    ) -> T: ...

    def choose(
        self, messages: Sequence[Message], options: Sequence[str], *, ctx: CallContext | None = None
    ) -> str: ...

    def score_labels(
        self, prompt: str | Sequence[Message], labels: Sequence[str], *, ctx: CallContext | None = None
    ) -> dict[str, float]: ...
