"""Case export: a case as one JSON document, as Markdown, or as a STIX 2.1 bundle.

``export_case(session, case_id, fmt)`` is what the API (``GET /api/v1/cases/{id}/export``), the CLI
(``socflow cases export``) and the web UI's download links call; it reads, it never writes.

- **json**: the case, its alerts (first ``MAX_ALERTS``), observables, ATT&CK techniques, evidence and its
  notes' current revisions, as JSON-plain values (``format: socflow-case-export``, ``version: 1``).
- **markdown**: the same, for people: a header with the case's fields, the note's current revision
  verbatim, then observables, techniques, evidence and alerts (untrusted text escaped, one line each).
- **stix**: a STIX 2.1 bundle built with the ``stix2`` library: an ``identity`` for socflow; one SCO per
  observable (``ipv4-addr``/``ipv6-addr``, ``domain-name``, ``url``, ``email-addr``, ``file`` with its
  hash under ``MD5``/``SHA-1``/``SHA-256``/``SHA-512``, ``user-account`` (``user_id``), ``process``
  (``command_line``); hosts, which STIX 2.1 has no SCO for, as ``infrastructure`` objects named after
  the host with ``infrastructure_types: [unknown]``); one ``attack-pattern`` per technique with an
  ``external_references`` entry ``{source_name: mitre-attack, external_id: T…}`` and its tactics as
  ``kill_chain_phases``; a ``report`` for the case referencing all of them (labels carry status,
  severity, priority and verdict); and each note as a STIX ``note`` whose ``content`` is its current
  revision, referencing the report and the objects. Ids of the report, note, identity, hosts and
  attack-patterns are UUIDv5 names (re-exports agree); SCO ids are the spec's deterministic ids (process
  ids excepted: the spec gives them none).
  Nothing custom: ``stix2.parse`` reads the bundle back strictly.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import stix2
from sqlalchemy import select
from sqlalchemy.orm import Session
from stix2.exceptions import STIXError

from socflow import __version__
from socflow.enums import ObservableType
from socflow.schemas import now_utc
from socflow.store import CaseStore
from socflow.tables import Case, Note

ExportFormat = Literal["json", "markdown", "stix"]
FORMATS: tuple[ExportFormat, ...] = ("json", "markdown", "stix")
MAX_ALERTS = 1000
NAMESPACE = uuid.UUID("6b1f3a52-64f2-4b9e-9a57-2d1e6f0c9a11")  # socflow's UUIDv5 namespace for STIX ids
HASH_NAMES = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!|#])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Export:
    content: str
    media_type: str
    filename: str


def export_case(session: Session, case_id: int, fmt: ExportFormat) -> Export:
    """The case in ``fmt`` (``NotFoundError`` when there is no such case)."""
    doc = case_document(session, case_id)
    if fmt == "json":
        text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
        return Export(text, "application/json", f"case-{case_id}.json")
    if fmt == "markdown":
        return Export(case_markdown(doc), "text/markdown; charset=utf-8", f"case-{case_id}.md")
    bundle = case_bundle(doc)
    return Export(
        bundle.serialize(pretty=True) + "\n", "application/stix+json;version=2.1", f"case-{case_id}.stix.json"
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def case_document(session: Session, case_id: int) -> dict[str, Any]:
    """The JSON export of a case (see the module docstring)."""
    store = CaseStore(session)
    case: Case = store.get_case(case_id)
    notes = []
    for note in session.scalars(select(Note).where(Note.case_id == case_id).order_by(Note.id)):
        rev = store.get_current_revision(note)
        notes.append(
            {
                "kind": note.kind,
                "status": note.status,
                "revision": rev.revision,
                "author": rev.author,
                "author_kind": rev.author_kind,
                "created_at": _iso(rev.created_at),
                "body": rev.body,
            }
        )
    return {
        "format": "socflow-case-export",
        "version": 1,
        "exported_at": _iso(now_utc()),
        "socflow": __version__,
        "case": {
            "id": case.id,
            "title": case.title,
            "status": case.status,
            "severity": case.severity,
            "priority": case.priority,
            "verdict": case.verdict,
            "confidence": case.confidence,
            "assignee": case.assignee,
            "created_at": _iso(case.created_at),
            "updated_at": _iso(case.updated_at),
            "closed_at": _iso(case.closed_at),
        },
        "alerts": [
            {
                "id": a.id,
                "source": a.source,
                "source_ref": a.source_ref,
                "title": a.title,
                "severity": a.severity,
                "rule_id": a.rule_id,
                "rule_name": a.rule_name,
                "observed_at": _iso(a.observed_at),
                "entities": a.entities or {},
            }
            for a in store.list_alerts(case_id=case_id, limit=MAX_ALERTS)
        ],
        "observables": sorted(
            ({"type": o.type, "value": o.value} for o in store.list_observables(case_id=case_id)),
            key=lambda o: (o["type"], o["value"]),
        ),
        "techniques": [
            {
                "technique_id": t.technique_id,
                "name": t.name,
                "tactics": list(t.tactics or []),
                "source": t.source,
                "confidence": t.confidence,
                "evidence_ids": list(t.evidence_ids or []),
            }
            for t in store.list_techniques(case_id)
        ],
        "evidence": [
            {
                "evidence_id": e.evidence_id,
                "kind": e.kind,
                "backend": e.backend,
                "observed_at": _iso(e.observed_at),
                "summary": e.summary,
            }
            for e in store.list_evidence(case_id)
        ],
        "notes": notes,
    }


# -- Markdown ---------------------------------------------------------------------------------------


def _md(text: object, limit: int = 300) -> str:
    """Untrusted text on one line, Markdown control characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(text)).strip()[:limit])


def case_markdown(doc: dict[str, Any]) -> str:
    case = doc["case"]
    lines = [f"# Case {case['id']}: {_md(case['title'], 500)}", ""]
    for key in ("status", "severity", "priority", "verdict", "confidence", "assignee", "created_at"):
        lines.append(f"- **{key}**: {_md(case[key]) if case[key] is not None else '-'}")
    lines += ["", f"Exported by socflow {doc['socflow']} at {doc['exported_at']}.", ""]
    for note in doc["notes"]:
        lines += [
            f"## Note ({_md(note['kind'])}, {note['status']}, revision {note['revision']}"
            f" by {_md(note['author'])})",
            "",
            note["body"].rstrip(),  # the note as stored: socflow's checked Markdown or the analyst's text
            "",
        ]
    lines += ["## Observables", ""]
    lines += [f"- {o['type']}: `{_md(o['value'], 500)}`" for o in doc["observables"]] or ["None."]
    lines += ["", "## ATT&CK techniques", ""]
    lines += [
        f"- {t['technique_id']} {_md(t['name'])} ({', '.join(t['tactics'])}; {t['source']})"
        for t in doc["techniques"]
    ] or ["None."]
    lines += ["", "## Evidence", ""]
    lines += [f"- `{e['evidence_id']}` ({e['kind']}): {_md(e['summary'])}" for e in doc["evidence"]] or [
        "None."
    ]
    lines += ["", "## Alerts", ""]
    lines += [
        f"- #{a['id']} {_md(a['title'])} ({a['severity']}, source {_md(a['source'], 100)}, "
        f"rule {_md(a['rule_id'] or '-', 100)})"
        for a in doc["alerts"]
    ] or ["None."]
    return "\n".join(lines) + "\n"


# -- STIX 2.1 ---------------------------------------------------------------------------------------


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _sid(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, '|'.join(str(p) for p in parts))}"


def observable_sco(kind: str, value: str) -> Any:
    """The STIX 2.1 SCO of one observable (``None`` for a value STIX cannot carry)."""
    try:
        if kind == ObservableType.ip:
            address = ipaddress.ip_address(value)
            cls = stix2.v21.IPv4Address if address.version == 4 else stix2.v21.IPv6Address
            return cls(value=str(address))
        if kind == ObservableType.domain:
            return stix2.v21.DomainName(value=value)
        if kind == ObservableType.url:
            return stix2.v21.URL(value=value)
        if kind == ObservableType.email:
            return stix2.v21.EmailAddress(value=value)
        if kind == ObservableType.hash:
            name = HASH_NAMES.get(len(value))
            return stix2.v21.File(hashes={name: value}) if name else None
        if kind == ObservableType.user:
            return stix2.v21.UserAccount(user_id=value)
        if kind == ObservableType.process:
            return stix2.v21.Process(command_line=value)
        if kind == ObservableType.host:  # STIX 2.1 has no host SCO: an infrastructure object names it
            return stix2.v21.Infrastructure(
                id=_sid("infrastructure", "host", value), name=value, infrastructure_types=["unknown"]
            )
    except (STIXError, ValueError):
        return None
    return None


def technique_pattern(technique: dict[str, Any]) -> Any:
    tid = technique["technique_id"]
    return stix2.v21.AttackPattern(
        id=_sid("attack-pattern", "mitre-attack", tid),
        name=technique["name"],
        external_references=[
            {
                "source_name": "mitre-attack",
                "external_id": tid,
                "url": f"https://attack.mitre.org/techniques/{tid.replace('.', '/')}/",
            }
        ],
        kill_chain_phases=[
            {"kill_chain_name": "mitre-attack", "phase_name": str(t).lower().replace(" ", "-")}
            for t in technique["tactics"]
        ]
        or None,
    )


def case_bundle(doc: dict[str, Any]) -> Any:
    """The STIX 2.1 bundle of a case document (see the module docstring)."""
    case = doc["case"]
    case_id = case["id"]
    created = _when(case["created_at"])
    identity = stix2.v21.Identity(
        id=_sid("identity", "socflow"),
        name="socflow",
        identity_class="system",
        created=created,
        modified=created,
    )
    scos: dict[str, Any] = {}
    for o in doc["observables"]:
        sco = observable_sco(o["type"], o["value"])
        if sco is not None:
            scos.setdefault(sco.id, sco)
    patterns: dict[str, Any] = {}
    for t in doc["techniques"]:
        ap = technique_pattern(t)
        patterns.setdefault(ap.id, ap)
    refs = [*scos, *patterns] or [identity.id]
    labels = [f"{k}:{case[k]}" for k in ("status", "severity", "priority", "verdict") if case[k]]
    report = stix2.v21.Report(
        id=_sid("report", "case", case_id),
        created_by_ref=identity.id,
        name=f"socflow case {case_id}: {case['title']}"[:500],
        description=f"Case {case_id} exported from socflow ({len(doc['alerts'])} alerts).",
        published=created,
        created=created,
        report_types=["threat-report"],
        labels=labels,
        object_refs=refs,
    )
    objects: list[Any] = [identity, report, *scos.values(), *patterns.values()]
    for note in doc["notes"]:
        objects.append(
            stix2.v21.Note(
                id=_sid("note", "case", case_id, note["kind"]),
                created_by_ref=identity.id,
                abstract=f"socflow {note['kind']} ({note['status']}, revision {note['revision']})",
                content=note["body"],
                authors=[note["author"]],
                created=_when(note["created_at"]) or created,
                modified=_when(note["created_at"]) or created,
                object_refs=[report.id, *refs],
            )
        )
    return stix2.v21.Bundle(objects=objects)
