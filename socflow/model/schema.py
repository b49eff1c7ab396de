"""Bounded JSON schemas for structured output: checked at registration, budgeted in tokens.

Constrained decoding only guarantees a *complete* answer when every value has a finite size: strings bounded
by an anchored pattern whose quantifiers are bounded (``^[ -~]{0,40}$``; ``maxLength`` alone lets a small
model emit control characters forever), integers with a minimum and a maximum, arrays with ``maxItems``,
enums, booleans, and objects made of those. Anything else raises ``UnboundedSchemaError`` naming the field.
``bounded_schema(Model)`` returns the checked schema and the largest number of bytes its compact JSON can
take, which becomes the token budget (a byte-level token carries at least one byte).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel

from socflow.errors import UnboundedSchemaError

try:  # Python 3.11+
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse

M = TypeVar("M", bound=BaseModel)
_MAXREPEAT = _sre_parse.MAXREPEAT
# Slack for the end-of-sequence token and a byte-level tokenizer's odd merges.
BUDGET_SLACK_TOKENS = 8


@dataclass(frozen=True)
class BoundedSchema:
    """A checked schema: the JSON schema handed to the grammar compiler and its worst-case size."""

    schema: dict[str, Any]
    max_bytes: int

    @property
    def schema_json(self) -> str:
        return json.dumps(self.schema)

    @property
    def token_budget(self) -> int:
        return self.max_bytes + BUDGET_SLACK_TOKENS


def _pattern_max_chars(pattern: str, where: str) -> tuple[int, bool]:
    """Largest string a full-match of ``pattern`` can produce, and whether it may contain non-ASCII."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise UnboundedSchemaError(f"{where}: pattern {pattern!r} must be anchored with ^ and $")
    try:
        parsed = _sre_parse.parse(pattern)
    except re.error as exc:
        raise UnboundedSchemaError(f"{where}: invalid pattern {pattern!r}: {exc}") from exc
    _low, high = parsed.getwidth()
    if high >= _MAXREPEAT or high >= 2**31 - 1:
        raise UnboundedSchemaError(
            f"{where}: pattern {pattern!r} is unbounded; use bounded quantifiers such as ^[ -~]{{0,40}}$"
        )
    return int(high), _may_be_non_ascii(parsed)


def _may_be_non_ascii(parsed: Any) -> bool:
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL" and arg > 127:
            return True
        if name in ("NOT_LITERAL", "ANY", "CATEGORY"):
            return True
        if name == "IN":
            for sub_op, sub_arg in arg:
                sub = str(sub_op)
                if sub == "NEGATE" or sub == "CATEGORY":
                    return True
                if sub == "LITERAL" and sub_arg > 127:
                    return True
                if sub == "RANGE" and sub_arg[1] > 127:
                    return True
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and _may_be_non_ascii(arg[2]):
            return True
        if name == "SUBPATTERN" and _may_be_non_ascii(arg[-1]):
            return True
        if name == "BRANCH" and any(_may_be_non_ascii(b) for b in arg[1]):
            return True
    return False


class _Checker:
    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = dict(root.get("$defs", {}))
        self.stack: list[str] = []

    def resolve(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is None:
            return node
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/$defs/") or name not in self.defs:
            raise UnboundedSchemaError(f"{where}: unsupported reference {ref!r}")
        if name in self.stack:
            raise UnboundedSchemaError(f"{where}: recursive schema {name!r} has no size bound")
        return dict(self.defs[name])

    def size(self, node: dict[str, Any], where: str) -> int:
        """Worst-case bytes of the compact JSON for a value of ``node``."""
        ref = node.get("$ref")
        node = self.resolve(node, where)
        if ref is not None:
            self.stack.append(ref.rsplit("/", 1)[-1])
            try:
                return self.size(node, where)
            finally:
                self.stack.pop()
        if "const" in node:
            return len(json.dumps(node["const"], ensure_ascii=False).encode())
        if "enum" in node:
            if not node["enum"]:
                raise UnboundedSchemaError(f"{where}: empty enum")
            return max(len(json.dumps(v, ensure_ascii=False).encode()) for v in node["enum"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return max(self.size(sub, f"{where}") for sub in node[key])
        if "allOf" in node:
            if len(node["allOf"]) != 1:
                raise UnboundedSchemaError(f"{where}: allOf with several schemas is not supported")
            return self.size(node["allOf"][0], where)
        kind = node.get("type")
        if isinstance(kind, list):
            return max(self.size({**node, "type": k}, where) for k in kind)
        if kind == "string":
            return self._string(node, where)
        if kind == "integer":
            return self._integer(node, where)
        if kind == "number":
            raise UnboundedSchemaError(
                f"{where}: floating-point numbers have unbounded digits; use a bounded integer "
                "(e.g. a percentage with minimum 0 and maximum 100) or an enum"
            )
        if kind == "boolean":
            return 5
        if kind == "null":
            return 4
        if kind == "array":
            return self._array(node, where)
        if kind == "object":
            return self._object(node, where)
        raise UnboundedSchemaError(f"{where}: a value of any type has no size bound; give it a type")

    def _string(self, node: dict[str, Any], where: str) -> int:
        if "format" in node:
            raise UnboundedSchemaError(f"{where}: string formats are not supported; use a bounded pattern")
        pattern = node.get("pattern")
        if pattern is None:
            hint = " (maxLength alone is not enough)" if "maxLength" in node else ""
            raise UnboundedSchemaError(
                f"{where}: unbounded string{hint}; bound it with an anchored pattern such as "
                "Field(pattern=r'^[ -~]{0,40}$')"
            )
        chars, non_ascii = _pattern_max_chars(pattern, where)
        if "maxLength" in node:
            chars = min(chars, int(node["maxLength"]))
        # Worst case per character inside JSON: an escape (\" or \\) is 2 bytes, \uXXXX is 6.
        return 2 + chars * (6 if non_ascii else 2)

    def _integer(self, node: dict[str, Any], where: str) -> int:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        if low is None or high is None:
            raise UnboundedSchemaError(f"{where}: integer needs both a minimum and a maximum (ge=, le=)")
        return max(len(str(int(low))), len(str(int(high))))

    def _array(self, node: dict[str, Any], where: str) -> int:
        if "prefixItems" in node:
            raise UnboundedSchemaError(f"{where}: tuples are not supported; use a list with max_length")
        if "maxItems" not in node:
            raise UnboundedSchemaError(f"{where}: unbounded array; give it max_length (maxItems)")
        items = node.get("items")
        if not isinstance(items, dict):
            raise UnboundedSchemaError(f"{where}: array items need a schema")
        n = int(node["maxItems"])
        return 2 + n * (self.size(items, f"{where}[]") + 1)

    def _object(self, node: dict[str, Any], where: str) -> int:
        extra = node.get("additionalProperties", False)
        if extra not in (False, None) or "patternProperties" in node:
            raise UnboundedSchemaError(f"{where}: open-ended objects (dicts) are not supported")
        props: dict[str, Any] = node.get("properties", {})
        total = 2
        for name, sub in props.items():
            total += len(json.dumps(name, ensure_ascii=False).encode()) + 1
            total += self.size(sub, f"{where}.{name}" if where else name) + 1
        return total


def check_schema(schema: dict[str, Any], *, name: str = "") -> BoundedSchema:
    """Check a JSON schema for bounds; ``UnboundedSchemaError`` names the first unbounded field."""
    checker = _Checker(schema)
    max_bytes = checker.size(schema, name)
    return BoundedSchema(schema=schema, max_bytes=max_bytes)


@lru_cache(maxsize=512)
def bounded_schema(model: type[BaseModel]) -> BoundedSchema:
    """The checked schema of a pydantic model (cached per class: checking happens once, at registration)."""
    return check_schema(model.model_json_schema(), name=model.__name__)


def register_schema(model: type[M]) -> type[M]:
    """Class decorator: check ``model`` for bounds when it is defined, so a bad schema fails at import."""
    bounded_schema(model)
    return model


def choice_schema(options: tuple[str, ...]) -> BoundedSchema:
    """The schema of a choice among ``options`` (a JSON string enum)."""
    return check_schema({"enum": list(options)}, name="choice")
