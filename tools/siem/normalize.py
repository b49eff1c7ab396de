"""Normalization of Windows events into one flat dict with the original field names.

EVTX-to-JSON converters (the ``evtx`` wheel, the SigmaHQ regression ``.json`` files) give
``{"Event": {"System": {...}, "EventData": {...}}}`` with ``#attributes``/``#text`` shapes; OTRF
Security-Datasets give flat NXLog-style records (``Hostname``, ``SourceName``, ``@timestamp``). ECS
documents (Winlogbeat, Elastic Agent; ``tools/siem/ecs.py``) are mapped back onto the same names. All become::

    {"EventID": 1, "Channel": "...", "Computer": "...", "Provider_Name": "...", "TimeCreated": "...Z",
     "EventRecordID": 42, ..., "Image": "C:\\...", "CommandLine": "..."}

String values are stripped of surrounding whitespace (converters differ there), ``null`` values are dropped
and EventID is an int. ``ecs_columns`` derives the indexed ECS-style entity columns from the flat dict.
"""

from __future__ import annotations

import ntpath
from datetime import UTC, datetime
from typing import Any

from tools.siem.ecs import ecs_to_windows, is_ecs

_ATTRS = "#attributes"
_TEXT = "#text"

#: OTRF / NXLog names -> Windows System names.
_FLAT_ALIASES = {
    "Hostname": "Computer",
    "SourceName": "Provider_Name",
    "RecordNumber": "EventRecordID",
}


def _scalar(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    return value


def _unwrap(value: Any) -> Any:
    """``{"#attributes": {...}, "#text": x}`` -> x; other dicts stay dicts."""
    if isinstance(value, dict) and _TEXT in value:
        return value[_TEXT]
    return value


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    value = _unwrap(value)
    if value is None:
        return
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            if sub_key == _ATTRS and isinstance(sub_value, dict):
                for attr, attr_value in sub_value.items():
                    if attr != "xmlns":
                        _put(out, f"{key}_{attr}" if key else attr, attr_value)
            else:
                _put(out, sub_key if key in ("", "EventData", "UserData") else f"{key}_{sub_key}", sub_value)
        return
    if isinstance(value, list):
        value = [_scalar(_unwrap(v)) for v in value if v is not None]
        if all(not isinstance(v, dict | list) for v in value):
            out.setdefault(key, value)
        return
    out.setdefault(key, _scalar(value))


def _flatten_system(system: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in system.items():
        if key == "EventID":
            out["EventID"] = _unwrap(value)
            if isinstance(value, dict) and isinstance(value.get(_ATTRS), dict):
                for attr, attr_value in value[_ATTRS].items():
                    _put(out, f"EventID_{attr}", attr_value)
        elif key == "TimeCreated":
            attrs = value.get(_ATTRS, {}) if isinstance(value, dict) else {}
            out["TimeCreated"] = attrs.get("SystemTime", value if isinstance(value, str) else None)
        elif isinstance(value, dict) and set(value) == {_ATTRS}:
            for attr, attr_value in value[_ATTRS].items():
                _put(out, f"{key}_{attr}", attr_value)
        else:
            _put(out, key, value)


def _named_data(items: list[Any]) -> bool:
    """``[{"#attributes": {"Name": "Image"}, "#text": "..."}, ...]`` (XML-to-JSON converters)."""
    return bool(items) and all(
        isinstance(i, dict) and isinstance(i.get(_ATTRS), dict) and "Name" in i[_ATTRS] for i in items
    )


def _flatten_data(data: Any, out: dict[str, Any]) -> None:
    """EventData/UserData: named fields by name; unnamed ``Data`` values under ``Data``."""
    data = _unwrap(data)
    if data is None:
        return
    if isinstance(data, dict):
        for key, value in data.items():
            if key == _ATTRS:
                continue
            if key == "Data" and isinstance(value, list) and _named_data(value):
                for item in value:
                    _put(out, str(item[_ATTRS]["Name"]).replace(" ", ""), item.get(_TEXT))
            elif key == "Data" and isinstance(value, list | str | int):
                _put(out, "Data", value)
            elif isinstance(value, dict) and _TEXT not in value:
                _flatten_data(value, out)  # UserData: <Element xmlns=...><Field>..</Field></Element>
            else:
                # Defender & co. name data fields with spaces ("Threat Name"); Sigma uses "ThreatName".
                _put(out, key.replace(" ", ""), value)
    else:
        _put(out, "Data", data)


def _coerce_event_id(flat: dict[str, Any]) -> None:
    event_id = flat.get("EventID")
    if isinstance(event_id, str) and event_id.strip().isdigit():
        flat["EventID"] = int(event_id.strip())


def normalize_event(record: dict[str, Any]) -> dict[str, Any]:
    """One flat dict with original Windows field names, from any supported JSON shape."""
    event = record.get("Event") if isinstance(record.get("Event"), dict) else None
    out: dict[str, Any] = {}
    if event is None and is_ecs(record):
        out.update(ecs_to_windows(record))
    elif event is not None:
        system = event.get("System")
        if isinstance(system, dict):
            _flatten_system(system, out)
        for section in ("EventData", "UserData"):
            if section in event:
                _flatten_data(event[section], out)
        for key, value in event.items():
            if key not in ("System", "EventData", "UserData", _ATTRS):
                _put(out, key, value)
    else:
        for key, value in record.items():
            _put(out, _FLAT_ALIASES.get(key, key), value)
        if "TimeCreated" not in out:
            stamp = record.get("@timestamp") or record.get("EventTime") or record.get("timestamp")
            if stamp is not None:
                out["TimeCreated"] = str(stamp).strip()
    _coerce_event_id(out)
    stamp = parse_timestamp(out.get("TimeCreated"))
    if stamp is not None:
        out["TimeCreated"] = iso_utc(stamp)
    return out


def parse_timestamp(value: Any) -> datetime | None:
    """Parse the usual Windows/ECS timestamp shapes to an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    text = str(value).strip().replace(" UTC", "")
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "T" not in text and " " in text:
        text = text.replace(" ", "T", 1)
    # Python accepts at most 6 fractional digits.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC (sortable as text): ``2025-01-01T00:00:00.000000Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first(flat: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = flat.get(name)
        if value not in (None, "", "-"):
            return str(value)
    return None


def _user_name(flat: dict[str, Any]) -> str | None:
    user = _first(flat, "User", "TargetUserName", "SubjectUserName", "AccountName", "UserName", "user.name")
    if user is None:
        return None
    return user.rsplit("\\", 1)[-1]


def ecs_columns(flat: dict[str, Any]) -> dict[str, str | None]:
    """The indexed ECS-style columns of one normalized event."""
    stamp = parse_timestamp(flat.get("TimeCreated") or flat.get("@timestamp"))
    image = _first(flat, "Image", "NewProcessName", "ProcessName", "process.executable")
    event_code = flat.get("EventID")
    return {
        "@timestamp": iso_utc(stamp) if stamp else None,
        "host.name": _first(flat, "Computer", "host.name"),
        "user.name": _user_name(flat),
        "source.ip": _first(flat, "SourceIp", "IpAddress", "SourceAddress", "ClientAddress", "source.ip"),
        "destination.ip": _first(flat, "DestinationIp", "DestAddress", "destination.ip"),
        "process.name": ntpath.basename(image) if image else None,
        "process.command_line": _first(flat, "CommandLine", "process.command_line"),
        "process.hash": _first(flat, "Hashes", "Hash", "sha256", "md5"),
        "event.code": str(event_code) if event_code is not None else None,
        "winlog.channel": _first(flat, "Channel"),
        "event.provider": _first(flat, "Provider_Name"),
    }
