from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from socflow.errors import UnboundedSchemaError
from socflow.model.schema import bounded_schema, check_schema, choice_schema, register_schema

Printable = Field(pattern=r"^[ -~]{0,40}$")


class Item(BaseModel):
    host: str = Field(pattern=r"^[ -~]{0,20}$")
    score: int = Field(ge=0, le=10)


class Verdict(BaseModel):
    verdict: Literal["benign", "malicious", "suspicious"]
    summary: str = Printable
    severity: int = Field(ge=0, le=100)
    items: list[Item] = Field(max_length=2)
    note: str | None = Field(default=None, pattern=r"^[a-z]{0,5}$")


def test_bounded_schema_computes_the_worst_case_size() -> None:
    bounded = bounded_schema(Verdict)
    longest = Verdict(
        verdict="suspicious",
        summary='"' * 40,
        severity=100,
        items=[Item(host="\\" * 20, score=10)] * 2,
        note="zzzzz",
    )
    compact = json.dumps(longest.model_dump(mode="json"), separators=(",", ":"))
    assert len(compact.encode()) <= bounded.max_bytes
    assert bounded.token_budget > bounded.max_bytes


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (Field(), "unbounded string"),
        (Field(max_length=40), "maxLength alone"),
        (Field(pattern=r"^[a-z]+$"), "unbounded"),
        (Field(pattern=r"[a-z]{0,4}"), "anchored"),
    ],
)
def test_unbounded_strings_are_rejected(field: object, reason: str) -> None:
    class Bad(BaseModel):
        text: str = field  # type: ignore[assignment]

    with pytest.raises(UnboundedSchemaError, match=reason) as info:
        bounded_schema(Bad)
    assert "Bad.text" in str(info.value)


def test_unbounded_numbers_arrays_and_dicts_are_rejected() -> None:
    class NoMax(BaseModel):
        n: int = Field(ge=0)

    class Floaty(BaseModel):
        x: float = Field(ge=0, le=1)

    class Listy(BaseModel):
        xs: list[int] = Field(default_factory=list)

    class Dicty(BaseModel):
        d: dict[str, int]

    class Node(BaseModel):
        child: Node | None = None

    for model, needle in [
        (NoMax, "minimum and a maximum"),
        (Floaty, "floating-point"),
        (Listy, "unbounded array"),
        (Dicty, "open-ended"),
        (Node, "recursive"),
    ]:
        with pytest.raises(UnboundedSchemaError, match=needle):
            bounded_schema(model)


def test_register_schema_fails_at_definition() -> None:
    with pytest.raises(UnboundedSchemaError):

        @register_schema
        class Bad(BaseModel):
            text: str

    @register_schema
    class Good(BaseModel):
        text: str = Printable

    assert Good(text="ok").text == "ok"


def test_choice_schema_is_an_enum_of_the_options() -> None:
    bounded = choice_schema(("T1059", "T1059.001"))
    assert bounded.schema == {"enum": ["T1059", "T1059.001"]}
    assert bounded.max_bytes == len('"T1059.001"')


def test_non_ascii_patterns_get_a_wider_budget() -> None:
    ascii_only = check_schema({"type": "string", "pattern": "^[a-z]{0,10}$"})
    anything = check_schema({"type": "string", "pattern": "^.{0,10}$"})
    assert anything.max_bytes > ascii_only.max_bytes
