"""Alert normalization: SOC vendor formats onto the generic alert format (DESIGN.md, section 3).

``to_generic(item)`` returns a plain dict that ``AlertIn.model_validate`` then validates; it never
validates bounds itself (that stays in one place, the schema). ``detect_format(item)`` names the shape.

Formats:

- ``generic``: the design's format, passed through unchanged.
- ``sigma_hit``: alerts from ``socflow siem detect`` (already generic; source ``socflow-sigma``).
- ``splunk_notable``: Splunk ES notable events (``rule_name``/``rule_title``/``search_name``, ``urgency``,
  ``event_id``, ``_time``, ``src``, ``dest``, ``user``, ``orig_host``/``dvc``/``host``,
  ``annotations.mitre_attack``); the ``result`` of a search export line is unwrapped.
- ``elastic``: Elastic Security alert documents (ECS, nested or dotted keys; ``_source`` of a search hit
  is unwrapped): ``kibana.alert.uuid``, ``kibana.alert.rule.*``, ``kibana.alert.severity`` /
  ``risk_score``, ``@timestamp``, ``host.name``, ``user.name``, ``source.ip``, ``destination.ip``,
  ``process.name``, ``file.hash.*``, ``kibana.alert.rule.threat``.
- ``wazuh``: Wazuh ``alerts.json`` lines (``id``, ``timestamp``, ``rule.level``/``description``/``id``/
  ``mitre``, ``agent.name``, ``data.srcip``, ``data.srcuser``, ``data.dstuser``, ...).
- ``cookbook``: the Foundation-Sec cookbook's alert shape ``{alert_uuid, timestamp, user, source_ip,
  destination_ip, message, code}``.
- ``custom``: anything else, mapped by dotted field paths (``field_map``), e.g.
  ``{"title": "alert.name", "severity": "alert.prio", "source_ref": "alert.id", "hosts": "device.hostname"}``.

Every vendor mapping keeps the original payload under ``raw``. ATT&CK technique ids found in vendor fields
become rule tags ``attack.tXXXX[.YYY]`` (tactic names become ``attack.<tactic-name>``).

Severity maps (documented in docs/ingest.md, pinned by tests):

- Wazuh ``rule.level``: 0–3 informational, 4–6 low, 7–9 medium, 10–12 high, 13–15 critical.
- Elastic: ``kibana.alert.severity`` when it is a known word, else ``kibana.alert.risk_score`` with
  Elastic's documented ranges 0–21 low, 22–47 medium, 48–73 high, 74–100 critical.
- Splunk ES ``urgency`` (``informational``/``low``/``medium``/``high``/``critical``), else ``severity``.
- Missing vendor severity: ``medium`` (the alert is kept; the model and analysts triage it): a Wazuh alert
  without ``rule.level``, an Elastic alert without ``severity`` or ``risk_score``, a Splunk notable without
  ``urgency`` or ``severity``. A Wazuh alert without ``rule.description`` is titled ``Wazuh rule <id>``.
"""

from __future__ import annotations

import copy
import ipaddress
import ntpath
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from socflow.errors import InputError

FORMATS: Final = ("generic", "sigma_hit", "splunk_notable", "elastic", "wazuh", "cookbook", "custom")
SIGMA_SOURCE: Final = "socflow-sigma"
DEFAULT_SOURCES: Final = {
    "splunk_notable": "splunk-es",
    "elastic": "elastic-security",
    "wazuh": "wazuh",
    "cookbook": "cookbook",
    "sigma_hit": SIGMA_SOURCE,
}
DEFAULT_SEVERITY: Final = "medium"
MAX_TITLE_CHARS: Final = 500
MAX_RULE_ID_CHARS: Final = 200
MAX_DESCRIPTION_BYTES: Final = 60 * 1024  # under the schema's 64 KiB bound, so long logs are cut, not refused

ENTITY_KINDS: Final = ("hosts", "users", "ips", "hashes", "domains", "urls", "processes", "emails")
CUSTOM_KEYS: Final = frozenset(
    {"source", "source_ref", "title", "severity", "timestamp", "description", "rule.id", "rule.name", "tags"}
    | set(ENTITY_KINDS)
)
_GENERIC_KEYS: Final = frozenset(
    {"source", "source_ref", "title", "severity", "timestamp", "description", "rule", "entities", "raw"}
)
_SEVERITIES: Final = ("informational", "low", "medium", "high", "critical")
_SEVERITY_WORDS: Final = {
    "info": "informational",
    "informational": "informational",
    "information": "informational",
    "low": "low",
    "medium": "medium",
    "moderate": "medium",
    "high": "high",
    "critical": "critical",
}
_TECHNIQUE: Final = re.compile(r"\bT\d{4}(?:\.\d{3})?\b", re.I)


# -- field access ------------------------------------------------------------------------------------
def get_path(item: Any, path: str) -> Any:
    """The value at a dotted ``path``, whether keys are nested (``{"a": {"b": 1}}``) or flat (``{"a.b": 1}``)
    or a mix of both (ECS documents use all three); a numeric part indexes a list. ``None`` when absent."""
    if not path:
        return None
    return _lookup(item, path.split("."))


def _lookup(obj: Any, parts: list[str]) -> Any:
    if not parts:
        return obj
    if isinstance(obj, Mapping):
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in obj:
                found = _lookup(obj[key], parts[i:])
                if found is not None:
                    return found
        return None
    if isinstance(obj, list) and parts[0].isdigit():
        index = int(parts[0])
        return _lookup(obj[index], parts[1:]) if index < len(obj) else None
    return None


def _values(value: Any) -> list[str]:
    """A scalar or a (nested) list as non-empty strings; Splunk multi-value fields arrive as lists."""
    if value is None or isinstance(value, Mapping):
        return []
    if isinstance(value, list | tuple):
        return [v for item in value for v in _values(item)]
    text = str(value).strip()
    return [text] if text and text not in ("-", "unknown", "null", "None") else []


def _first(item: Any, *paths: str) -> str | None:
    for path in paths:
        values = _values(get_path(item, path))
        if values:
            return values[0]
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class _Entities:
    def __init__(self) -> None:
        self.kinds: dict[str, list[str]] = {kind: [] for kind in ENTITY_KINDS}

    def add(self, kind: str, value: Any) -> None:
        for v in _values(value):
            if v not in self.kinds[kind]:
                self.kinds[kind].append(v)

    def host_or_ip(self, value: Any) -> None:
        """Splunk ``src``/``dest`` hold a host name or an address."""
        for v in _values(value):
            self.add("ips" if _is_ip(v) else "hosts", v)

    def process(self, value: Any) -> None:
        """Process names, from a bare name or a full image path (``C:\\...\\cmd.exe`` -> ``cmd.exe``)."""
        for v in _values(value):
            self.add("processes", ntpath.basename(v) or v)

    def as_dict(self) -> dict[str, list[str]]:
        return {kind: values for kind, values in self.kinds.items() if values}


# -- small conversions -------------------------------------------------------------------------------
def technique_tags(values: Iterable[Any]) -> list[str]:
    """``attack.t1059.001`` tags from any strings that hold ATT&CK technique ids."""
    tags: list[str] = []
    for value in values:
        for text in _values(value):
            for match in _TECHNIQUE.findall(text):
                tag = "attack." + match.lower()
                if tag not in tags:
                    tags.append(tag)
    return tags


def tactic_tag(name: str) -> str:
    """``Credential Access`` -> ``attack.credential-access`` (the Sigma tag style)."""
    return "attack." + re.sub(r"[\s_]+", "-", name.strip().lower())


def to_iso(value: Any) -> str | None:
    """An ISO 8601 UTC-aware timestamp from epoch seconds (number or numeric string) or an ISO string
    (``+0000`` offsets and ``Z`` accepted). Unparseable text is passed on for the schema to refuse."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return _epoch_iso(float(value))
    text = str(value).strip()
    try:
        return _epoch_iso(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return text
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def _epoch_iso(seconds: float) -> str:
    if seconds > 1e11:  # epoch milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(seconds)  # out of any calendar: the schema refuses it with a reason


def epoch_seconds(value: Any) -> float | None:
    """Epoch seconds of a timestamp (epoch number or ISO string); ``None`` when it cannot be read."""
    iso = to_iso(value)
    if iso is None:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (ValueError, OverflowError):
        return None


def severity_word(value: Any) -> str | None:
    """A generic severity from a vendor word (``Info``, ``moderate``, ``HIGH``, ...), else ``None``."""
    if isinstance(value, str):
        return _SEVERITY_WORDS.get(value.strip().lower())
    return None


def wazuh_severity(level: Any) -> str:
    """Wazuh ``rule.level`` 0–15: 0–3 informational, 4–6 low, 7–9 medium, 10–12 high, 13–15 critical."""
    try:
        n = int(level)
    except (TypeError, ValueError):
        return DEFAULT_SEVERITY
    if n <= 3:
        return "informational"
    if n <= 6:
        return "low"
    if n <= 9:
        return "medium"
    if n <= 12:
        return "high"
    return "critical"


def risk_score_severity(score: Any) -> str:
    """Elastic ``risk_score`` 0–100: 0–21 low, 22–47 medium, 48–73 high, 74–100 critical."""
    try:
        n = float(score)
    except (TypeError, ValueError):
        return DEFAULT_SEVERITY
    if n < 22:
        return "low"
    if n < 48:
        return "medium"
    if n < 74:
        return "high"
    return "critical"


def _title(value: str | None, limit: int = MAX_TITLE_CHARS) -> str | None:
    """One line of at most ``limit`` characters (vendor titles and rule names can be long)."""
    if value is None:
        return None
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _description(value: str | None) -> str | None:
    if not value:
        return None
    data = value.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_DESCRIPTION_BYTES:
        return value
    return data[:MAX_DESCRIPTION_BYTES].decode("utf-8", "ignore") + " [truncated]"


def _alert(
    *,
    source: str,
    source_ref: str | None,
    title: str | None,
    severity: str,
    timestamp: Any,
    description: str | None,
    rule_id: str | None,
    rule_name: str | None,
    tags: list[str],
    entities: _Entities,
    raw: Mapping[str, Any],
) -> dict[str, Any]:
    alert: dict[str, Any] = {"source": source, "severity": severity}
    if source_ref:
        alert["source_ref"] = source_ref
    if title:
        alert["title"] = _title(title)
    iso = to_iso(timestamp)
    if iso:
        alert["timestamp"] = iso
    description = _description(description)
    if description:
        alert["description"] = description
    rule: dict[str, Any] = {}
    if rule_id:
        rule["id"] = _title(rule_id, MAX_RULE_ID_CHARS)
    if rule_name:
        rule["name"] = _title(rule_name)
    if tags:
        rule["tags"] = tags
    if rule:
        alert["rule"] = rule
    found = entities.as_dict()
    if found:
        alert["entities"] = found
    alert["raw"] = copy.deepcopy(dict(raw))
    return alert


# -- detection ---------------------------------------------------------------------------------------
def _unwrap(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The alert inside a transport envelope: a search hit's ``_source``, a Splunk export ``result``."""
    source, result = item.get("_source"), item.get("result")
    if isinstance(source, Mapping) and ("_index" in item or "_id" in item):
        return source
    if isinstance(result, Mapping) and ("preview" in item or "offset" in item):
        return result
    return item


_SPLUNK_NAMES: Final = ("rule_name", "rule_title", "search_name")
_SPLUNK_MARKS: Final = ("urgency", "event_id", "_time", "orig_sid", "orig_time", "security_domain", "rule_id")
_WAZUH_RULE_MARKS: Final = ("level", "description", "id")
_WAZUH_HOST_MARKS: Final = ("agent", "manager", "decoder")


def _is_wazuh(doc: Mapping[str, Any]) -> bool:
    rule = doc.get("rule")
    return (
        isinstance(rule, Mapping)
        and any(k in rule for k in _WAZUH_RULE_MARKS)
        and any(k in doc for k in _WAZUH_HOST_MARKS)
    )


def _is_splunk(doc: Mapping[str, Any]) -> bool:
    return any(k in doc for k in _SPLUNK_NAMES) and any(k in doc for k in _SPLUNK_MARKS)


def _missing_marks(item: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    """Per format: the marks looked for and which of them this payload lacks."""

    def some(keys: Iterable[str], where: Mapping[str, Any]) -> bool:
        return any(k in where for k in keys)

    found = doc.get("rule")
    rule: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    checks = {
        "generic": [(k, k in item) for k in ("source", "title", "severity")],
        "splunk_notable": [
            ("|".join(_SPLUNK_NAMES), some(_SPLUNK_NAMES, doc)),
            ("|".join(_SPLUNK_MARKS), some(_SPLUNK_MARKS, doc)),
        ],
        "elastic": [("kibana.alert.uuid|kibana.alert.rule.name", False)],
        "wazuh": [
            ("rule.{" + "|".join(_WAZUH_RULE_MARKS) + "}", some(_WAZUH_RULE_MARKS, rule)),
            ("|".join(_WAZUH_HOST_MARKS), some(_WAZUH_HOST_MARKS, doc)),
        ],
        "cookbook": [("alert_uuid", False)],
    }
    parts = []
    for fmt, marks in checks.items():
        missing = [name for name, found in marks if not found]
        parts.append(f"{fmt} looks for {', '.join(n for n, _ in marks)} (missing: {', '.join(missing)})")
    return "; ".join(parts)


def detect_format(item: Any) -> str:
    """The format of one alert; raises ``InputError`` naming, per format, the marks looked for and which
    were missing. A vendor alert lacking an optional field is still recognised by its other marks: Wazuh by
    any of ``rule.level``/``rule.description``/``rule.id`` with ``agent``/``manager``/``decoder``; a Splunk
    notable by a rule name with any of ``urgency``/``event_id``/``_time``/``orig_sid``/...; Elastic by
    ``kibana.alert.uuid`` or ``kibana.alert.rule.name`` (severity defaults are in the module docstring)."""
    if not isinstance(item, Mapping):
        raise InputError("an alert must be a JSON object")
    if set(item) <= _GENERIC_KEYS and {"source", "title"} & item.keys():  # the schema names what is missing
        return "sigma_hit" if item.get("source") == SIGMA_SOURCE else "generic"
    doc = _unwrap(item)
    if get_path(doc, "kibana.alert.uuid") is not None or get_path(doc, "kibana.alert.rule.name") is not None:
        return "elastic"
    if _is_wazuh(doc):
        return "wazuh"
    if "alert_uuid" in doc:
        return "cookbook"
    if _is_splunk(doc):
        return "splunk_notable"
    if {"source", "title", "severity"} <= item.keys():  # generic with extra keys: the schema says which
        return "sigma_hit" if item.get("source") == SIGMA_SOURCE else "generic"
    raise InputError(
        "unrecognised alert format (or pass a field_map for a custom format, or force one with ?format=): "
        + _missing_marks(item, doc),
        field="format",
    )


# -- vendor mappings ---------------------------------------------------------------------------------
def _generic(item: Mapping[str, Any], source: str | None, default_source: str | None) -> dict[str, Any]:
    alert = dict(item)
    if not alert.get("source") and (source or default_source):
        alert["source"] = source or default_source
    return alert


def _splunk(item: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    doc = _unwrap(item)
    severity = severity_word(_first(doc, "urgency")) or severity_word(_first(doc, "severity"))
    entities = _Entities()
    for path in ("orig_host", "dvc", "host", "src_host", "dest_host", "dest_nt_host", "src_nt_host"):
        entities.add("hosts", get_path(doc, path))
    entities.host_or_ip(get_path(doc, "src"))
    entities.host_or_ip(get_path(doc, "dest"))
    for path in ("src_ip", "dest_ip", "dvc_ip"):
        entities.add("ips", get_path(doc, path))
    for path in ("user", "src_user", "dest_user", "orig_user"):
        entities.add("users", get_path(doc, path))
    for path in ("process_name", "parent_process_name"):
        entities.process(get_path(doc, path))
    for path in ("file_hash", "process_hash", "hash", "md5", "sha1", "sha256"):
        entities.add("hashes", get_path(doc, path))
    for path in ("url",):
        entities.add("urls", get_path(doc, path))
    for path in ("query", "domain", "dest_dns"):
        entities.add("domains", get_path(doc, path))
    tags = technique_tags(
        [
            get_path(doc, "annotations.mitre_attack"),
            get_path(doc, "annotations.mitre_attack.mitre_technique_id"),
            get_path(doc, "mitre_technique_id"),
        ]
    )
    tactics = _values(get_path(doc, "annotations.mitre_attack.mitre_tactic"))
    tags += [t for t in (tactic_tag(n) for n in tactics) if t not in tags]
    name = _first(doc, "rule_name", "search_name")
    return _alert(
        source=source or DEFAULT_SOURCES["splunk_notable"],
        source_ref=_first(doc, "event_id", "event_hash"),
        title=_first(doc, "rule_title", "rule_name", "search_name"),
        severity=severity or DEFAULT_SEVERITY,
        timestamp=get_path(doc, "_time"),
        description=_first(doc, "rule_description", "description"),
        rule_id=_first(doc, "search_name", "rule_name"),  # notable rule_id is per event
        rule_name=name,
        tags=tags,
        entities=entities,
        raw=item,
    )


def _elastic(item: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    doc = _unwrap(item)
    severity = severity_word(_first(doc, "kibana.alert.severity", "kibana.alert.rule.severity"))
    if severity is None:
        score = _first(doc, "kibana.alert.risk_score", "kibana.alert.rule.risk_score")
        severity = risk_score_severity(score) if score is not None else DEFAULT_SEVERITY
    entities = _Entities()
    entities.add("hosts", get_path(doc, "host.name"))
    entities.add("hosts", get_path(doc, "host.hostname"))
    for path in ("user.name", "user.target.name", "source.user.name", "destination.user.name"):
        entities.add("users", get_path(doc, path))
    for path in ("source.ip", "destination.ip", "host.ip", "client.ip", "server.ip"):
        entities.add("ips", get_path(doc, path))
    for path in ("process.name", "process.parent.name"):
        entities.process(get_path(doc, path))
    for prefix in ("file.hash", "process.hash", "dll.hash"):
        for algo in ("md5", "sha1", "sha256"):
            entities.add("hashes", get_path(doc, f"{prefix}.{algo}"))
    for path in ("url.full", "url.original"):
        entities.add("urls", get_path(doc, path))
    for path in ("dns.question.name", "destination.domain", "url.domain"):
        entities.add("domains", get_path(doc, path))
    entities.add("emails", get_path(doc, "user.email"))
    tags: list[str] = []
    threats = get_path(doc, "kibana.alert.rule.threat")
    for threat in threats if isinstance(threats, list) else []:
        if not isinstance(threat, Mapping):
            continue
        tactic = get_path(threat, "tactic.name")
        if isinstance(tactic, str) and tactic.strip() and tactic_tag(tactic) not in tags:
            tags.append(tactic_tag(tactic))
        for technique in threat.get("technique") or []:
            if not isinstance(technique, Mapping):
                continue
            subs = [s.get("id") for s in technique.get("subtechnique") or [] if isinstance(s, Mapping)]
            ids = [technique.get("id"), *subs]
            tags += [t for t in technique_tags(ids) if t not in tags]
    return _alert(
        source=source or DEFAULT_SOURCES["elastic"],
        source_ref=_first(doc, "kibana.alert.uuid") or _first(item, "_id"),
        title=_first(doc, "kibana.alert.rule.name"),
        severity=severity,
        timestamp=get_path(doc, "@timestamp") or get_path(doc, "kibana.alert.original_time"),
        description=_first(doc, "kibana.alert.reason", "kibana.alert.rule.description"),
        rule_id=_first(doc, "kibana.alert.rule.rule_id", "kibana.alert.rule.uuid"),
        rule_name=_first(doc, "kibana.alert.rule.name"),
        tags=tags,
        entities=entities,
        raw=item,
    )


def _wazuh(item: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    doc = _unwrap(item)
    entities = _Entities()
    entities.add("hosts", get_path(doc, "agent.name"))
    for path in ("agent.ip", "data.srcip", "data.dstip", "data.src_ip", "data.dest_ip"):
        entities.add("ips", [v for v in _values(get_path(doc, path)) if _is_ip(v)])
    for path in (
        "data.srcuser",
        "data.dstuser",
        "data.win.eventdata.targetUserName",
        "data.win.eventdata.subjectUserName",
        "syscheck.uname_after",
    ):
        entities.add("users", get_path(doc, path))
    for path in ("data.win.eventdata.image", "data.win.eventdata.parentImage", "data.process.name"):
        entities.process(get_path(doc, path))
    for algo in ("md5", "sha1", "sha256"):
        entities.add("hashes", get_path(doc, f"syscheck.{algo}_after"))
    for text in _values(get_path(doc, "data.win.eventdata.hashes")):  # Sysmon "SHA256=...,MD5=..."
        entities.add("hashes", [part.partition("=")[2].lower() for part in text.split(",") if "=" in part])
    entities.add("urls", get_path(doc, "data.url"))
    tags = [tactic_tag(t) for t in _values(get_path(doc, "rule.mitre.tactic"))]
    tags += [t for t in technique_tags([get_path(doc, "rule.mitre.id")]) if t not in tags]
    description = _first(doc, "rule.description")
    rule_id = _first(doc, "rule.id")
    return _alert(
        source=source or DEFAULT_SOURCES["wazuh"],
        source_ref=_first(doc, "id", "_id"),
        title=description or (f"Wazuh rule {rule_id}" if rule_id else None),
        severity=wazuh_severity(get_path(doc, "rule.level")),
        timestamp=get_path(doc, "timestamp") or get_path(doc, "@timestamp"),
        description=_first(doc, "full_log") or description,
        rule_id=rule_id,
        rule_name=description,
        tags=list(dict.fromkeys(tags)),
        entities=entities,
        raw=item,
    )


def _cookbook(item: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    entities = _Entities()
    entities.add("users", item.get("user"))
    entities.host_or_ip(item.get("source_ip"))
    entities.host_or_ip(item.get("destination_ip"))
    entities.add("hosts", item.get("host"))
    message = _first(item, "message")
    code = _first(item, "code")
    return _alert(
        source=source or DEFAULT_SOURCES["cookbook"],
        source_ref=_first(item, "alert_uuid"),
        title=message or (f"Alert code {code}" if code else None),
        severity=severity_word(_first(item, "severity")) or DEFAULT_SEVERITY,
        timestamp=item.get("timestamp"),
        description=message,
        rule_id=code,
        rule_name=None,
        tags=technique_tags([item.get("technique"), item.get("mitre")]),
        entities=entities,
        raw=item,
    )


def _custom(item: Mapping[str, Any], field_map: Mapping[str, str], source: str | None) -> dict[str, Any]:
    unknown = sorted(set(field_map) - CUSTOM_KEYS - {f"entities.{k}" for k in ENTITY_KINDS} - {"rule.tags"})
    if unknown:
        raise InputError(
            f"unknown field_map keys {unknown}; expected some of {sorted(CUSTOM_KEYS)}", field="field_map"
        )
    paths = {
        key.removeprefix("entities.").replace("rule.tags", "tags"): path for key, path in field_map.items()
    }

    def pick(key: str) -> str | None:
        return _first(item, paths[key]) if key in paths else None

    entities = _Entities()
    for kind in ENTITY_KINDS:
        if kind in paths:
            if kind == "processes":
                entities.process(get_path(item, paths[kind]))
            else:
                entities.add(kind, get_path(item, paths[kind]))
    raw_severity = get_path(item, paths["severity"]) if "severity" in paths else None
    severity: Any = severity_word(raw_severity) or raw_severity
    if severity is None:
        severity = DEFAULT_SEVERITY
    tags: list[str] = []
    for value in _values(get_path(item, paths["tags"])) if "tags" in paths else []:
        tag = "attack." + value.lower() if _TECHNIQUE.fullmatch(value) else value
        if tag not in tags:
            tags.append(tag)
    return _alert(
        source=source or pick("source") or "",
        source_ref=pick("source_ref"),
        title=pick("title"),
        severity=severity,
        timestamp=get_path(item, paths["timestamp"]) if "timestamp" in paths else None,
        description=pick("description"),
        rule_id=pick("rule.id"),
        rule_name=pick("rule.name"),
        tags=tags,
        entities=entities,
        raw=item,
    )


def to_generic(
    item: dict[str, Any],
    *,
    fmt: str = "auto",
    field_map: Mapping[str, str] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """``item`` in the generic alert format (a new dict; ``item`` is not modified).

    ``fmt="auto"`` detects the format; with a ``field_map`` an unrecognised shape is mapped as ``custom``.
    ``source`` names the sending system (each vendor format has a default). Raises ``InputError`` for a
    non-object, an unknown ``fmt``, or an unrecognised shape without a ``field_map``.
    """
    if not isinstance(item, Mapping):
        raise InputError("an alert must be a JSON object")
    if fmt == "auto":
        try:
            fmt = detect_format(item)
        except InputError:
            if not field_map:
                raise
            fmt = "custom"
    if fmt not in FORMATS:
        raise InputError(
            f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}", field="format"
        )
    if fmt == "generic":
        return _generic(item, source, None)
    if fmt == "sigma_hit":
        return _generic(item, source, SIGMA_SOURCE)
    if fmt == "splunk_notable":
        return _splunk(item, source)
    if fmt == "elastic":
        return _elastic(item, source)
    if fmt == "wazuh":
        return _wazuh(item, source)
    if fmt == "cookbook":
        return _cookbook(item, source)
    if not field_map:
        raise InputError(
            "the custom format needs a field_map (generic field -> dotted path)", field="field_map"
        )
    return _custom(item, field_map, source)


def make_normalizer(
    *, fmt: str = "auto", field_map: Mapping[str, str] | None = None, source: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``to_generic`` with its options bound: the ``normalizer`` hook of ``IngestService``."""
    if fmt != "auto" and fmt not in FORMATS:
        raise InputError(
            f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}", field="format"
        )
    options = dict(field_map) if field_map else None

    def normalize(item: dict[str, Any]) -> dict[str, Any]:
        return to_generic(item, fmt=fmt, field_map=options, source=source)

    return normalize
