"""Feed files in real formats, read into validated ``IndicatorIn``s with hard bounds.

- **STIX 2.1 bundle** (``{"type": "bundle", "objects": [...]}``): each ``indicator`` with
  ``pattern_type: stix``, not revoked, has its pattern parsed once by ``stix2patterns`` (the grammar the
  ``stix2`` library validates indicators with; parsing it twice would make a 100,000-indicator feed load
  in tens of minutes) and its fields validated as ``IndicatorIn``. Every equality comparison on
  ``ipv4-addr:value``, ``ipv6-addr:value``, ``domain-name:value``, ``url:value``,
  ``email-addr:value`` or ``file:hashes.<MD5|SHA-1|SHA-256|SHA-512>`` becomes one indicator (name,
  description, labels, confidence, valid_until and id kept). Observable objects of those types
  (``ipv4-addr``, ``domain-name``, ``file`` with ``hashes``...), parsed with ``stix2.parse``, are
  indicators too.
- **MISP event JSON** (``{"Event": {...}}``, a list of them, ``{"response": [...]}``, or a feed folder with
  ``manifest.json`` naming ``<uuid>.json`` event files): every attribute of the event and its objects with
  ``to_ids: true`` and a supported type (``ip-src``, ``ip-dst``, ``ip-src|port``, ``domain``,
  ``hostname``, ``domain|ip``, ``url``, ``md5``, ``sha1``, ``sha256``, ``sha512``, ``filename|<hash>``,
  ``email-src``, ``email-dst``, ``email``). Deleted attributes are skipped. The event's threat level gives
  the confidence (high 90, medium 60, low 30), its tags and the attribute's tags the tags.
- **CSV** with a header naming at least ``value`` and ``type`` (optional ``source``, ``confidence``,
  ``description``, ``tags`` separated by ``;``).

Files are hostile until read: at most ``MAX_FILE_BYTES`` per file, ``MAX_INDICATORS`` indicators per load,
``MAX_OBJECTS`` objects or attributes looked at, values validated per type; a value that fails is counted
in the report's ``skipped`` with the first few reasons, never stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import stix2
from pydantic import ValidationError
from stix2.exceptions import STIXError
from stix2patterns.exceptions import ParseException
from stix2patterns.v21.pattern import Pattern

from socflow.errors import InputError
from tools.intel.indicators import IndicatorIn, IndicatorType

Format = Literal["stix", "misp", "csv"]

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_INDICATORS = 100_000
MAX_OBJECTS = 500_000  # objects, attributes or rows looked at in one load
MAX_MANIFEST_EVENTS = 1_000
MAX_REASONS = 10
MAX_PATTERN_CHARS = 10_000

_STIX_VALUE_TYPES = {
    "ipv4-addr": IndicatorType.ip,
    "ipv6-addr": IndicatorType.ip,
    "domain-name": IndicatorType.domain,
    "url": IndicatorType.url,
    "email-addr": IndicatorType.email,
}
_STIX_HASHES = {"MD5", "SHA-1", "SHA-256", "SHA-512", "SHA1", "SHA256", "SHA512"}

_MISP_TYPES = {
    "ip-src": IndicatorType.ip,
    "ip-dst": IndicatorType.ip,
    "domain": IndicatorType.domain,
    "hostname": IndicatorType.domain,
    "url": IndicatorType.url,
    "link": IndicatorType.url,
    "md5": IndicatorType.hash,
    "sha1": IndicatorType.hash,
    "sha256": IndicatorType.hash,
    "sha512": IndicatorType.hash,
    "email": IndicatorType.email,
    "email-src": IndicatorType.email,
    "email-dst": IndicatorType.email,
}
# "a|b" composite types: which part is the indicator and its type (``domain|ip`` gives both).
_MISP_COMPOSITE: dict[str, tuple[tuple[int, IndicatorType], ...]] = {
    "ip-src|port": ((0, IndicatorType.ip),),
    "ip-dst|port": ((0, IndicatorType.ip),),
    "domain|ip": ((0, IndicatorType.domain), (1, IndicatorType.ip)),
    "hostname|port": ((0, IndicatorType.domain),),
    **{f"filename|{h}": ((1, IndicatorType.hash),) for h in ("md5", "sha1", "sha256", "sha512")},
}
MISP_THREAT_CONFIDENCE = {"1": 90, "2": 60, "3": 30}

_CSV_TYPES = {
    **{k: IndicatorType.ip for k in ("ip", "ipv4", "ipv6", "ip-src", "ip-dst", "ipv4-addr", "ipv6-addr")},
    **{k: IndicatorType.domain for k in ("domain", "hostname", "fqdn", "domain-name")},
    **{k: IndicatorType.url for k in ("url", "uri")},
    **{k: IndicatorType.hash for k in ("hash", "md5", "sha1", "sha256", "sha512", "sha-1", "sha-256")},
    **{k: IndicatorType.email for k in ("email", "email-addr", "e-mail")},
}


@dataclass
class ParseReport:
    """What a load read: the indicators (unique by type, value and source), what it skipped and why."""

    format: Format
    indicators: dict[tuple[str, str, str], IndicatorIn] = field(default_factory=dict)
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)
    truncated: bool = False

    def add(self, **fields: Any) -> None:
        if len(self.indicators) >= MAX_INDICATORS:
            self.truncated = True
            return
        try:
            item = IndicatorIn.model_validate(fields)
        except (ValidationError, ValueError) as exc:
            self.skip(f"{fields.get('type')} {str(fields.get('value'))[:80]!r}: {_first_error(exc)}")
            return
        self.indicators.setdefault((item.type.value, item.value, item.source), item)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason[:300])


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        return str(errors[0]["msg"]) if errors else "invalid"
    return str(exc)[:200]


def read_json(path: Path) -> Any:
    """A JSON file of at most ``MAX_FILE_BYTES`` (``InputError`` otherwise)."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"not JSON ({exc.__class__.__name__})", field=str(path)) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", field=str(path)) from None


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{size} bytes is over the {MAX_FILE_BYTES}-byte limit", field=str(path))
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(
            f"cannot read it ({exc.strerror or exc.__class__.__name__})", field=str(path)
        ) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", field=str(path)) from None


def detect_format(path: Path) -> Format:
    """``csv`` by suffix; a folder with ``manifest.json`` is a MISP feed; JSON by its shape."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "misp"
        raise InputError("a folder must be a MISP feed (with manifest.json)", field=str(path))
    if path.suffix.lower() in {".csv", ".txt"}:
        return "csv"
    data = read_json(path)
    return "stix" if isinstance(data, dict) and data.get("type") == "bundle" else "misp"


def parse_file(path: Path, fmt: Format | Literal["auto"], *, source: str) -> ParseReport:
    """The indicators of ``path`` in ``fmt`` (``auto``: ``detect_format``), attributed to ``source``."""
    chosen: Format = detect_format(path) if fmt == "auto" else fmt
    if chosen == "csv":
        return parse_csv(_read_text(path), source=source)
    if chosen == "misp":
        if path.is_dir():
            return parse_misp_feed(path, source=source)
        return parse_misp(read_json(path), source=source)
    return parse_stix(read_json(path), source=source)


# -- STIX 2.1 ---------------------------------------------------------------------------------------


def _unquote(literal: str) -> str | None:
    if len(literal) >= 2 and literal[0] == literal[-1] == "'":
        return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return None


def _pattern_values(pattern: str) -> Iterator[tuple[IndicatorType, str]]:
    """(type, value) of every equality comparison on a supported object path."""
    comparisons = Pattern(pattern).inspect().comparisons
    for object_type, items in comparisons.items():
        for path, op, literal in items:
            value = _unquote(literal) if op == "=" else None
            if value is None:
                continue
            if object_type in _STIX_VALUE_TYPES and path == ["value"]:
                yield _STIX_VALUE_TYPES[object_type], value
            elif (
                object_type == "file"
                and len(path) == 2
                and path[0] == "hashes"
                and (str(path[1]).upper() in _STIX_HASHES)
            ):
                yield IndicatorType.hash, value


def parse_stix(data: Any, *, source: str) -> ParseReport:
    """A STIX 2.1 bundle's indicators and observables (see the module docstring)."""
    report = ParseReport("stix")
    if (
        not isinstance(data, dict)
        or data.get("type") != "bundle"
        or not isinstance(data.get("objects"), list)
    ):
        raise InputError("not a STIX 2.1 bundle (type bundle with an objects list)", field="bundle")
    for raw in data["objects"][:MAX_OBJECTS]:
        if report.truncated:
            break
        if not isinstance(raw, dict):
            report.skip("an object that is not a JSON object")
            continue
        kind = raw.get("type")
        if kind == "indicator":
            _stix_indicator(raw, report, source)
        elif kind in _STIX_VALUE_TYPES or kind == "file":
            _stix_observable(raw, report, source)
    if len(data["objects"]) > MAX_OBJECTS:
        report.truncated = True
    return report


def _stix_indicator(raw: dict[str, Any], report: ParseReport, source: str) -> None:
    ident = str(raw.get("id"))[:80]
    pattern = raw.get("pattern")
    if raw.get("pattern_type") != "stix":
        report.skip(f"indicator {ident}: pattern_type {str(raw.get('pattern_type'))[:40]}")
        return
    if _truthy(raw.get("revoked")):
        report.skip(f"indicator {ident}: revoked")
        return
    if (
        not ident.startswith("indicator--")
        or not isinstance(pattern, str)
        or len(pattern) > MAX_PATTERN_CHARS
    ):
        report.skip(f"indicator {ident}: no id, or no pattern of at most {MAX_PATTERN_CHARS} characters")
        return
    try:  # the STIX patterning grammar (stix2-patterns, what stix2 validates indicators with), parsed once
        values = list(_pattern_values(pattern))
    except (ParseException, ValueError, TypeError) as exc:
        report.skip(f"indicator {ident}: {str(exc)[:150]}")
        return
    if not values:
        report.skip(f"indicator {ident}: no supported equality comparison")
    description = " - ".join(str(x) for x in (raw.get("name"), raw.get("description")) if x) or None
    labels = [*_strings(raw.get("labels")), *_strings(raw.get("indicator_types"))]
    for kind, value in values:
        report.add(
            type=kind,
            value=value,
            source=source,
            confidence=raw.get("confidence"),
            description=description,
            tags=labels,
            external_id=ident,
            valid_until=raw.get("valid_until"),
        )


def _strings(value: object) -> list[str]:
    return [str(v) for v in value[:MAX_OBJECTS] if isinstance(v, str)] if isinstance(value, list) else []


def _stix_observable(raw: dict[str, Any], report: ParseReport, source: str) -> None:
    try:
        obj = stix2.parse(raw, allow_custom=True, version="2.1")
    except (STIXError, ValueError, TypeError) as exc:
        report.skip(f"{str(raw.get('type'))[:40]} {str(raw.get('id'))[:80]}: {str(exc)[:150]}")
        return
    if obj["type"] == "file":
        for algorithm, digest in dict(obj.get("hashes") or {}).items():
            if str(algorithm).upper() in _STIX_HASHES:
                report.add(type=IndicatorType.hash, value=digest, source=source, external_id=obj["id"])
        return
    report.add(type=_STIX_VALUE_TYPES[obj["type"]], value=obj["value"], source=source, external_id=obj["id"])


# -- MISP -------------------------------------------------------------------------------------------


def _misp_events(data: Any) -> Iterator[dict[str, Any]]:
    """The events of a MISP JSON document: ``{"Event": ...}``, a list of those, ``{"response": [...]}``."""
    if isinstance(data, dict) and isinstance(data.get("response"), list):
        data = data["response"]
    items = data if isinstance(data, list) else [data]
    for item in items[:MAX_MANIFEST_EVENTS]:
        if isinstance(item, dict) and isinstance(item.get("Event"), dict):
            yield item["Event"]


def _tag_names(holder: dict[str, Any]) -> list[str]:
    tags = holder.get("Tag")
    if not isinstance(tags, list):
        return []
    return [str(t["name"]) for t in tags[:MAX_OBJECTS] if isinstance(t, dict) and t.get("name")]


def _attributes(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    attrs = event.get("Attribute")
    if isinstance(attrs, list):
        yield from (a for a in attrs if isinstance(a, dict))
    objects = event.get("Object")
    if isinstance(objects, list):
        for obj in objects:
            inner = obj.get("Attribute") if isinstance(obj, dict) else None
            if isinstance(inner, list):
                yield from (a for a in inner if isinstance(a, dict))


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str | int) and str(value).lower() in {"1", "true"})


def parse_misp(data: Any, *, source: str, report: ParseReport | None = None) -> ParseReport:
    """The ``to_ids`` attributes of MISP events (see the module docstring)."""
    report = report or ParseReport("misp")
    events = list(_misp_events(data))
    if not events:
        raise InputError(
            "no MISP event (an object with an Event, a list of them, or a response)", field="Event"
        )
    looked = 0
    for event in events:
        confidence = MISP_THREAT_CONFIDENCE.get(str(event.get("threat_level_id", "")))
        event_tags = _tag_names(event)
        info = event.get("info")
        for attr in _attributes(event):
            looked += 1
            if looked > MAX_OBJECTS or report.truncated:
                report.truncated = True
                return report
            misp_attribute(attr, report, source, confidence, event_tags, info)
    return report


def misp_attribute(
    attr: dict[str, Any],
    report: ParseReport,
    source: str,
    confidence: int | None,
    event_tags: list[str],
    info: object,
) -> None:
    kind, value = str(attr.get("type", ""))[:40], attr.get("value")
    if _truthy(attr.get("deleted")) or not _truthy(attr.get("to_ids")):
        report.skip(f"{kind}: not to_ids (or deleted)")
        return
    if not isinstance(value, str):
        report.skip(f"{kind}: no string value")
        return
    parts: Iterable[tuple[IndicatorType, str]]
    if kind in _MISP_TYPES:
        parts = [(_MISP_TYPES[kind], value)]
    elif kind in _MISP_COMPOSITE:
        pieces = value.split("|")
        parts = [(t, pieces[i]) for i, t in _MISP_COMPOSITE[kind] if i < len(pieces)]
    else:
        report.skip(f"{kind}: unsupported MISP attribute type")
        return
    comment = attr.get("comment")
    description = " - ".join(str(x) for x in (info, comment) if x) or None
    for t, v in parts:
        report.add(
            type=t,
            value=v,
            source=source,
            confidence=confidence,
            description=description,
            tags=[*event_tags, *_tag_names(attr), f"misp:{attr.get('category', '')}"[:100]],
            external_id=attr.get("uuid"),
        )


def parse_misp_feed(folder: Path, *, source: str) -> ParseReport:
    """A MISP feed folder: ``manifest.json`` (event uuid -> metadata) and one ``<uuid>.json`` per event."""
    manifest = read_json(folder / "manifest.json")
    if not isinstance(manifest, dict):
        raise InputError("manifest.json must map event uuids to their metadata", field="manifest.json")
    report = ParseReport("misp")
    for uuid in list(manifest)[:MAX_MANIFEST_EVENTS]:
        name = f"{uuid}.json"
        if not all(c.isalnum() or c == "-" for c in str(uuid)):  # a manifest names files, never paths
            report.skip(f"manifest entry {str(uuid)[:80]!r}: not an event uuid")
            continue
        try:
            parse_misp(read_json(folder / name), source=source, report=report)
        except InputError as exc:
            report.skip(f"{name}: {exc}")
        if report.truncated:
            break
    if len(manifest) > MAX_MANIFEST_EVENTS:
        report.truncated = True
    return report


# -- CSV --------------------------------------------------------------------------------------------


def parse_csv(text: str, *, source: str) -> ParseReport:
    """Rows of ``value,type[,source,confidence,description,tags]`` under a header naming the columns."""
    report = ParseReport("csv")
    csv.field_size_limit(64 * 1024)
    rows = csv.DictReader(io.StringIO(text))
    header = {h.strip().lower() for h in (rows.fieldnames or []) if h}
    if not {"value", "type"} <= header:
        raise InputError("the CSV header must name the columns value and type", field="header")
    try:
        for n, raw in enumerate(rows, start=2):
            if n > MAX_OBJECTS or report.truncated:
                report.truncated = True
                break
            row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
            kind = _CSV_TYPES.get(row.get("type", "").lower())
            if kind is None:
                report.skip(f"line {n}: unsupported type {row.get('type', '')[:40]!r}")
                continue
            confidence = row.get("confidence", "")
            report.add(
                type=kind,
                value=row.get("value", ""),
                source=row.get("source") or source,
                confidence=int(confidence) if confidence.isdigit() else None,
                description=row.get("description") or None,
                tags=[t.strip() for t in row.get("tags", "").split(";") if t.strip()],
            )
    except csv.Error as exc:
        raise InputError(f"not CSV ({exc})", field="csv") from None
    return report
