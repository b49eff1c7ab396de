"""Retrieval query text from a raw Windows event (EVTX-as-JSON or a flat field dict).

Only the event's own content: what kind of event it is (EventID in words), and the fields that describe
behaviour (images, command lines, targets, script text), without ids, hashes, GUIDs, times, vendor
boilerplate or profile paths. Used for mapping alerts that carry no rule text, and by the regression
benchmark's retrieval-only run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# (provider substring, EventID) -> what the event is, in the words ATT&CK's detection text uses
EVENT_KINDS: dict[tuple[str, int], str] = {
    ("sysmon", 1): "process creation command line",
    ("sysmon", 2): "file creation time modified timestomp",
    ("sysmon", 3): "network connection",
    ("sysmon", 5): "process terminated",
    ("sysmon", 6): "driver loaded",
    ("sysmon", 7): "image load module dll loaded",
    ("sysmon", 8): "create remote thread process injection",
    ("sysmon", 9): "raw disk access",
    ("sysmon", 10): "process access",
    ("sysmon", 11): "file creation",
    ("sysmon", 12): "registry key creation deletion",
    ("sysmon", 13): "registry value set modification",
    ("sysmon", 14): "registry key rename",
    ("sysmon", 15): "file stream alternate data stream",
    ("sysmon", 17): "named pipe created",
    ("sysmon", 18): "named pipe connected",
    ("sysmon", 19): "wmi event filter subscription",
    ("sysmon", 20): "wmi event consumer subscription",
    ("sysmon", 21): "wmi consumer filter binding subscription",
    ("sysmon", 22): "dns query",
    ("sysmon", 23): "file deletion",
    ("sysmon", 25): "process tampering image",
    ("sysmon", 26): "file deletion",
    ("security", 4624): "logon session",
    ("security", 4625): "failed logon authentication",
    ("security", 4648): "explicit credentials logon",
    ("security", 4656): "object handle requested access",
    ("security", 4663): "object access attempt",
    ("security", 4672): "special privileges assigned logon",
    ("security", 4688): "process creation command line",
    ("security", 4697): "service installed",
    ("security", 4698): "scheduled task created",
    ("security", 4699): "scheduled task deleted",
    ("security", 4702): "scheduled task updated",
    ("security", 4720): "user account created",
    ("security", 4732): "member added security group",
    ("security", 4738): "user account changed",
    ("security", 4768): "kerberos authentication ticket tgt requested",
    ("security", 4769): "kerberos service ticket requested",
    ("security", 4771): "kerberos pre-authentication failed",
    ("security", 4776): "credential validation ntlm",
    ("security", 5136): "directory service object modified",
    ("security", 5140): "network share accessed",
    ("security", 5145): "network share object access",
    ("system", 7045): "service installed",
    ("system", 104): "event log cleared",
    ("security", 1102): "audit log cleared",
    ("powershell", 4103): "powershell module logging pipeline execution",
    ("powershell", 4104): "powershell script block logging",
    ("taskscheduler", 106): "scheduled task registered",
    ("taskscheduler", 141): "scheduled task deleted",
    ("wmi", 5861): "wmi event subscription",
    ("defender", 1116): "antivirus malware detected",
    ("defender", 5001): "antivirus real-time protection disabled",
}
_SKIP_TEXT = """
    Hashes Hash ProcessGuid ParentProcessGuid SourceProcessGUID TargetProcessGUID LogonGuid UtcTime
    CreationUtcTime PreviousCreationUtcTime ProcessId ParentProcessId LogonId TerminalSessionId
    IntegrityLevel RuleName SourceProcessId TargetProcessId SourceThreadId SubjectLogonId TargetLogonId
    SubjectUserSid TargetUserSid ProcessID ThreadID FileVersion Company Product User ParentUser Computer
    SubjectDomainName TargetDomainName SubjectUserName Signature SignatureStatus Signed EventRecordID
    SequenceNumber SourcePort SourceIp DestinationIp Initiated ActivityID Correlation Keywords Level
    Opcode Task Version SourceIsIpv6 DestinationIsIpv6
"""
SKIP_FIELDS = frozenset(_SKIP_TEXT.split())
_NOISE = re.compile(
    r"(?i)\b(?:[a-z]:\\(?:windows\\(?:system32|syswow64)\\)?|program files(?: \(x86\))?\\|"
    r"users\\[^\\]+\\(?:appdata\\(?:local|roaming)\\)?|microsoft corporation|"
    r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?)"
)
MAX_VALUE_CHARS = 1000


def _values(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key not in SKIP_FIELDS and key != "#attributes":
                yield from _values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item)
    elif isinstance(node, str) and node.strip() not in ("", "-"):
        yield node[:MAX_VALUE_CHARS]


def event_kind(provider: str, event_id: int | None) -> str:
    lowered = provider.lower()
    for (name, eid), words in EVENT_KINDS.items():
        if eid == event_id and name in lowered:
            return words
    return ""


def _event_id(raw: Any) -> int | None:
    if isinstance(raw, Mapping):
        raw = raw.get("#text")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def event_query_text(event: Mapping[str, Any]) -> str:
    """Query text for one event: its kind in words plus its behaviour-describing field values."""
    body = event.get("Event", event)
    if not isinstance(body, Mapping):
        return ""
    system = body.get("System")
    parts: list[str] = []
    if isinstance(system, Mapping):
        provider = system.get("Provider", {})
        name = provider.get("#attributes", {}).get("Name", "") if isinstance(provider, Mapping) else ""
        parts.append(event_kind(f"{name} {system.get('Channel', '')}", _event_id(system.get("EventID"))))
        for section in ("EventData", "UserData"):
            parts.extend(_values(body.get(section)))
    else:  # a flat record (NXLog / ECS-ish)
        provider = str(body.get("SourceName", body.get("Channel", "")))
        parts.append(event_kind(f"{provider} {body.get('Channel', '')}", _event_id(body.get("EventID"))))
        parts.extend(_values(body))
    return "\n".join(_NOISE.sub(" ", p) for p in parts if p)
