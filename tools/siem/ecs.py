"""ECS-shaped events (Elastic Agent, Winlogbeat, Sysmon via Beats) onto the Windows field names Sigma uses.

Winlogbeat/Elastic Agent documents carry the original event data under ``winlog.event_data`` and the system
fields under ``winlog.*``; pure-ECS producers put them only in ECS fields (``process.executable``,
``process.command_line``, ...). Both become the same flat dict ``normalize_event`` makes from EVTX, so the
rule pack runs unchanged: ``winlog.event_data.X`` -> ``X``; system fields -> ``EventID``, ``Channel``,
``Computer``, ``Provider_Name``, ``EventRecordID``, ``TimeCreated``; and, where event data lacks a field, the
ECS field mapped back (:data:`ECS_TO_SIGMA`, the inverse of the Sysmon/Windows field mapping of pySigma's ECS
pipelines). Nested objects and dotted keys (``{"process.executable": ...}``) are both accepted.
"""

from __future__ import annotations

from typing import Any

#: ECS field -> the Windows (Sysmon/Security) event field Sigma rules name.
ECS_TO_SIGMA: dict[str, tuple[str, ...]] = {
    "process.executable": ("Image",),
    "process.command_line": ("CommandLine",),
    "process.pid": ("ProcessId",),
    "process.entity_id": ("ProcessGuid",),
    "process.working_directory": ("CurrentDirectory",),
    "process.parent.executable": ("ParentImage",),
    "process.parent.command_line": ("ParentCommandLine",),
    "process.parent.pid": ("ParentProcessId",),
    "process.parent.entity_id": ("ParentProcessGuid",),
    "process.pe.original_file_name": ("OriginalFileName",),
    "process.pe.description": ("Description",),
    "process.pe.product": ("Product",),
    "process.pe.company": ("Company",),
    "process.pe.file_version": ("FileVersion",),
    "process.Ext.token.integrity_level_name": ("IntegrityLevel",),
    "file.path": ("TargetFilename",),
    "dll.path": ("ImageLoaded",),
    "registry.path": ("TargetObject",),
    "registry.data.strings": ("Details",),
    "destination.ip": ("DestinationIp",),
    "destination.port": ("DestinationPort",),
    "destination.domain": ("DestinationHostname",),
    "source.ip": ("SourceIp",),
    "source.port": ("SourcePort",),
    "network.transport": ("Protocol",),
    "dns.question.name": ("QueryName",),
    "powershell.file.script_block_text": ("ScriptBlockText",),
    "winlog.event_data.SubjectUserName": ("SubjectUserName",),
    "user.name": ("User",),
}
_SYSTEM: dict[str, str] = {
    "winlog.channel": "Channel",
    "winlog.event_id": "EventID",
    "winlog.computer_name": "Computer",
    "winlog.provider_name": "Provider_Name",
    "winlog.record_id": "EventRecordID",
    "winlog.process.pid": "Execution_ProcessID",
    "winlog.process.thread.id": "Execution_ThreadID",
    "event.code": "EventID",
    "host.name": "Computer",
    "@timestamp": "TimeCreated",
    "event.provider": "Provider_Name",
}
_EVENT_DATA = ("winlog.event_data.", "winlog.user_data.")
MAX_DEPTH = 8


def is_ecs(record: dict[str, Any]) -> bool:
    """An ECS-shaped document: a ``winlog`` or ``ecs`` object, or dotted ``winlog.*``/``event.code`` keys."""
    if isinstance(record.get("winlog"), dict) or isinstance(record.get("ecs"), dict):
        return True
    if isinstance(record.get("event"), dict) and "code" in record["event"] and "@timestamp" in record:
        return True
    return any(key.startswith("winlog.") for key in record) or "event.code" in record


def flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested objects to dotted keys (lists and scalars kept as they are)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < MAX_DEPTH:
            out.update(flatten(value, f"{name}.", depth + 1))
        else:
            out[name] = value
    return out


def _scalar(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def ecs_to_windows(record: dict[str, Any]) -> dict[str, Any]:
    """The flat Windows-named event of an ECS document (the caller then applies the usual coercions)."""
    dotted = flatten(record)
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        for prefix in _EVENT_DATA:
            if key.startswith(prefix) and value is not None:
                out.setdefault(key[len(prefix) :].replace(" ", ""), _scalar(value))
    for key, name in _SYSTEM.items():
        value = dotted.get(key)
        if value is not None and name not in out:
            out[name] = _scalar(value)
    for key, names in ECS_TO_SIGMA.items():
        value = dotted.get(key)
        if value is None:
            continue
        if key == "user.name" and dotted.get("user.domain"):
            value = f"{dotted['user.domain']}\\{value}"
        for name in names:
            out.setdefault(name, _scalar(value))
    hashes = {k.rsplit(".", 1)[-1]: v for k, v in dotted.items() if k.startswith("process.hash.") and v}
    if hashes and "Hashes" not in out:
        out["Hashes"] = ",".join(f"{algo.upper()}={value}" for algo, value in sorted(hashes.items()))
    return out
