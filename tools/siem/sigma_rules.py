"""Sigma rules: loading, Windows log-source restriction, conversion to SQLite SQL for the embedded backend.

The SQL comes from pySigma's SQLite backend (``SELECT * FROM <table> WHERE ...``). It runs against a CTE
built from the fields the rule needs: ``json_extract(raw, '$."Image"') COLLATE NOCASE AS "Image"``, so
Sigma's case-insensitive equality holds, ``LIKE`` works as usual and ``REGEXP`` goes to a Python function
registered on the connection. The rule's log source becomes a condition on the indexed ``winlog.channel`` and
``event.code`` columns (the Sysmon and Windows pipelines' own mapping tables: a ``process_creation`` rule
matches Sysmon EventID 1 and Security 4688, where ``NewProcessName``/``ParentProcessName`` stand in for
``Image``/``ParentImage``). A missing field reads as ``''`` so negated selections behave as in Sigma.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionOR, ConditionValueExpression
from sigma.conversion.deferred import DeferredQueryExpression
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaError
from sigma.pipelines.common import windows_logsource_mapping
from sigma.pipelines.sysmon.sysmon import sysmon_generic_logsource_eventid_mapping
from sigma.pipelines.windows.windows import windows_generic_category_channel_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaFieldReference

from socflow.errors import SigmaConversionError

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
CTE_NAME = "sigma_events"
RAW_COLUMN = "__raw"
ROWID_COLUMN = "__rowid"

#: Security-log field names that carry the Sysmon taxonomy field for a category.
_SECURITY_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "process_creation": {"Image": ("NewProcessName",), "ParentImage": ("ParentProcessName",)},
}
_OR_GROUP = 64
_SAFE_FIELD = re.compile(r"^[A-Za-z0-9_.\-@ ]+$")


class UnknownSigmaFieldError(SigmaConversionError):
    """A rule field that cannot be represented (or, in strict mode, that no loaded event has)."""

    code = "sigma_unknown_field"

    def __init__(self, rule: str, field_name: str, reason: str) -> None:
        self.rule = rule
        self.field = field_name
        super().__init__(f"rule {rule}: field {field_name!r}: {reason}")


class _Backend(sqliteBackend):
    """pySigma's SQLite backend, plus keyword (unbound value) search as a substring of the raw event."""

    table: ClassVar[str] = CTE_NAME  # type: ignore[misc]
    # Missing fields are '' in the CTE (not NULL), so "not filter" holds for events without the field, as in
    # Sigma; ``field: null`` then means missing or empty.
    field_null_expression: ClassVar[str] = "{field} = ''"
    field_exists_expression: ClassVar[str] = "{field} <> ''"

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        value = self.convert_value_str(cond.value, state)  # type: ignore[arg-type]
        return f"{RAW_COLUMN} LIKE '%' || {value} || '%' ESCAPE '\\'"

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        return f"{RAW_COLUMN} LIKE '%{cond.value}%'"

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        """As the base, but long OR chains are nested in groups: SQLite parses ``a OR b OR ...`` into a tree
        as deep as the chain and refuses depth > 1000 (rules with a thousand values exist)."""
        if len(cond.args) <= _OR_GROUP:
            return super().convert_condition_or(cond, state)
        converted = (
            self.convert_condition(arg, state)
            if self.compare_precedence(cond, arg)
            else self.convert_condition_group(arg, state)
            for arg in cond.args
        )
        items = [c for c in converted if c is not None and not isinstance(c, DeferredQueryExpression)]
        if not items:
            return self.empty_or_expression
        while len(items) > _OR_GROUP:
            items = [f"({' OR '.join(items[i : i + _OR_GROUP])})" for i in range(0, len(items), _OR_GROUP)]
        return " OR ".join(items)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A Sigma rule ready to run on the embedded backend."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    description: str
    fields: tuple[str, ...]
    where_sql: str
    logsource_sql: str
    logsource_params: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""

    def sql(self) -> tuple[str, tuple[str, ...]]:
        """The full statement: CTE over the raw JSON restricted by log source, then the Sigma condition."""
        columns = [f"e.rowid AS {ROWID_COLUMN}", f"e.raw AS {RAW_COLUMN}"]
        for name in self.fields:
            extracts = [_json_extract(name), *(_json_extract(alias) for alias in self.aliases.get(name, ()))]
            expr = f"coalesce({', '.join(extracts)}, '')"
            columns.append(f"{expr} COLLATE NOCASE AS {_quote_ident(name)}")
        where = f" WHERE {self.logsource_sql}" if self.logsource_sql else ""
        cte = f"WITH {CTE_NAME} AS (SELECT {', '.join(columns)} FROM events e{where}) "
        return cte + self.where_sql.replace("SELECT *", f"SELECT {ROWID_COLUMN}", 1), self.logsource_params


def _json_extract(name: str) -> str:
    return f"json_extract(e.raw, '$.\"{name}\"')"


def _quote_ident(name: str) -> str:
    if re.fullmatch(r"[a-zA-Z0-9_]*", name):
        return f'"{name}"'
    return f"`{name}`"


def _detection_fields(detection: SigmaDetection | SigmaDetectionItem, out: list[str]) -> None:
    if isinstance(detection, SigmaDetectionItem):
        if detection.field and detection.field not in out:
            out.append(detection.field)
        for value in detection.value:
            if isinstance(value, SigmaFieldReference) and value.field not in out:
                out.append(value.field)
        return
    for item in detection.detection_items:
        _detection_fields(item, out)


def rule_fields(rule: SigmaRule) -> list[str]:
    fields: list[str] = []
    for detection in rule.detection.detections.values():
        _detection_fields(detection, fields)
    return fields


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def logsource_condition(rule: SigmaRule) -> tuple[str, tuple[str, ...]]:
    """SQL over the indexed columns for the rule's Windows log source (empty: no restriction)."""
    logsource = rule.logsource
    product = (logsource.product or "").lower()
    if product and product != "windows":
        raise SigmaConversionError(
            f"rule {rule.id}: log source product {product!r} is not Windows event logs"
        )
    clauses: list[str] = []
    params: list[str] = []

    def channel_codes(channels: list[str], codes: list[Any]) -> None:
        sql = f'e."winlog.channel" IN ({", ".join("?" * len(channels))})'
        params.extend(channels)
        if codes:
            sql += f' AND e."event.code" IN ({", ".join("?" * len(codes))})'
            params.extend(str(c) for c in codes)
        clauses.append(f"({sql})")

    category = (logsource.category or "").lower()
    service = (logsource.service or "").lower()
    if category in sysmon_generic_logsource_eventid_mapping:
        channel_codes([SYSMON_CHANNEL], _as_list(sysmon_generic_logsource_eventid_mapping[category]))
        if category == "process_creation":
            channel_codes(["Security"], [4688])
    elif category in windows_generic_category_channel_mapping:
        info: dict[str, Any] = windows_generic_category_channel_mapping[category]
        channel_codes(_as_list(windows_logsource_mapping[info["service"]]), _as_list(info["EventID"]))
    elif service:
        if service not in windows_logsource_mapping:
            raise SigmaConversionError(f"rule {rule.id}: unknown Windows log source service {service!r}")
        channel_codes(_as_list(windows_logsource_mapping[service]), [])
    elif category:
        raise SigmaConversionError(f"rule {rule.id}: unsupported Windows log source category {category!r}")
    return " OR ".join(clauses), tuple(params)


def compile_rule(rule: SigmaRule, *, known_fields: set[str] | None = None, source: str = "") -> CompiledRule:
    """Convert one Sigma rule; raises :class:`SigmaConversionError` (naming the rule) when it cannot."""
    rule_id = str(rule.id) if rule.id else rule.title
    fields = rule_fields(rule)
    for name in fields:
        if not _SAFE_FIELD.match(name):
            raise UnknownSigmaFieldError(rule_id, name, "not a valid event field name")
        if known_fields is not None and name not in known_fields:
            raise UnknownSigmaFieldError(rule_id, name, "no loaded event has this field")
    logsource_sql, params = logsource_condition(rule)
    try:
        queries = _Backend().convert_rule(rule)
    except SigmaError as exc:
        raise SigmaConversionError(f"rule {rule_id}: {exc}") from exc
    except (NotImplementedError, TypeError, ValueError, KeyError) as exc:
        raise SigmaConversionError(
            f"rule {rule_id}: conversion failed ({type(exc).__name__}: {exc})"
        ) from exc
    if len(queries) != 1 or not isinstance(queries[0], str):
        raise SigmaConversionError(f"rule {rule_id}: expected one SQL query, got {len(queries)}")
    category = (rule.logsource.category or "").lower()
    return CompiledRule(
        rule_id=rule_id,
        title=rule.title,
        level=rule.level.name.lower() if rule.level else "medium",
        tags=tuple(str(tag) for tag in rule.tags),
        description=rule.description or "",
        fields=tuple(fields),
        where_sql=queries[0],
        logsource_sql=logsource_sql,
        logsource_params=params,
        aliases=_SECURITY_ALIASES.get(category, {}),
        source=source,
    )


def parse_rule(text: str, *, source: str = "<string>") -> SigmaRule:
    """One Sigma rule from YAML text; raises SigmaConversionError naming the source on bad YAML/rule."""
    try:
        collection = SigmaCollection.from_yaml(text)
    except (SigmaError, ValueError) as exc:
        raise SigmaConversionError(f"{source}: not a valid Sigma rule: {exc}") from exc
    rules = [r for r in collection.rules if isinstance(r, SigmaRule)]
    if len(rules) != 1:
        raise SigmaConversionError(f"{source}: expected one Sigma detection rule, found {len(rules)}")
    return rules[0]


@dataclass(frozen=True, slots=True)
class RuleLoad:
    path: Path
    rule: SigmaRule | None
    error: str | None


def iter_rule_files(directory: Path) -> Iterator[RuleLoad]:
    """Every ``*.yml`` rule under a directory, parsed (errors reported per file, never raised)."""
    for path in sorted(directory.rglob("*.yml")):
        try:
            yield RuleLoad(path, parse_rule(path.read_text(encoding="utf-8"), source=str(path)), None)
        except (SigmaConversionError, OSError, UnicodeDecodeError) as exc:
            yield RuleLoad(path, None, str(exc))


def find_rule_file(rules_root: Path, rule_id: str) -> Path | None:
    """The rule file whose ``id:`` is ``rule_id`` (text search; the id is unique across SigmaHQ)."""
    needle = f"id: {rule_id}"
    for path in rules_root.rglob("*.yml"):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip() == needle:
                    return path
    return None
