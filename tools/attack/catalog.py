"""The pinned, offline ATT&CK Enterprise catalog: lookup and validation.

Names and tactics always come from here, never from model text. ``resolve`` is the one validation gate:
it normalises the spelling (``attack.t1059.001``, ``t1059.001``), maps SigmaHQ's ATT&CK v19 ids back to
v18.1 through the shipped crosswalk, follows ``revoked-by`` to the replacing technique, and raises
``UnknownTechniqueError`` for anything the catalog does not know (``DeprecatedTechniqueError`` for a
deprecated technique with no replacement).

Errors (all from ``socflow.errors``)::

    AttackError
    ├── UnknownTechniqueError        id not in the catalog (nor in the v19 crosswalk)
    │   └── MalformedTechniqueIdError  not even shaped like T1234 / T1234.001
    └── DeprecatedTechniqueError     deprecated and not replaced
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from socflow.errors import AttackError, UnknownTechniqueError

CATALOG_FILE = "enterprise-attack-v18.1.json.gz"
CROSSWALK_FILE = "sigma-v19-tag-crosswalk.json"
# SigmaHQ's v19 tactic tags (crosswalk ``tactic_changes``): both split out of v18.1's Defense Evasion
V19_TACTICS = {"stealth": "defense-evasion", "defense-impairment": "defense-evasion"}
_TACTIC_TAG = re.compile(r"^attack\.([a-z][a-z-]+)$", re.IGNORECASE)
_TAG = re.compile(r"^(?:attack\.)?(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


class MalformedTechniqueIdError(UnknownTechniqueError):
    code = "malformed_technique_id"


class DeprecatedTechniqueError(AttackError):
    code = "deprecated_technique"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Tactic(_Frozen):
    id: str
    shortname: str
    name: str
    order: int


class LogSource(_Frozen):
    data_component: str
    name: str
    channel: str


class Analytic(_Frozen):
    id: str
    platforms: list[str]
    description: str
    log_sources: list[LogSource]


class DetectionStrategy(_Frozen):
    id: str
    name: str
    analytics: list[Analytic]


class Mitigation(_Frozen):
    id: str
    name: str


class Technique(_Frozen):
    id: str
    name: str
    is_subtechnique: bool
    parent_id: str | None
    tactics: list[str]  # kill-chain shortnames, in matrix order
    platforms: list[str]
    description: str
    detection_strategies: list[DetectionStrategy]
    data_components: list[str]
    log_sources: list[str]
    mitigations: list[Mitigation]
    deprecated: bool
    revoked: bool
    revoked_by: str | None
    legacy_detection: str
    legacy_data_sources: list[str]
    version: str
    modified: str

    @property
    def active(self) -> bool:
        return not (self.deprecated or self.revoked)

    @property
    def url(self) -> str:
        return "https://attack.mitre.org/techniques/" + self.id.replace(".", "/")


def normalize_id(raw: str) -> str:
    """``attack.t1059.001`` / `` t1059.001 `` -> ``T1059.001``; raises on anything else."""
    match = _TAG.match(raw.strip())
    if match is None:
        raise MalformedTechniqueIdError(f"not an ATT&CK technique id: {raw[:40]!r}")
    return match.group(1).upper()


class AttackCatalog:
    """An immutable, in-memory ATT&CK catalog. Use ``load_catalog()`` for the shipped, cached one."""

    def __init__(self, doc: dict[str, Any], crosswalk: dict[str, Any] | None = None) -> None:
        self.version: str = doc["attack_version"]
        self.domain: str = doc.get("domain", "enterprise-attack")
        self.attribution: str = doc.get("attribution", "")
        self.tactics: list[Tactic] = sorted((Tactic(**t) for t in doc["tactics"]), key=lambda t: t.order)
        self._tactic_by_short = {t.shortname: t for t in self.tactics}
        self._techniques: dict[str, Technique] = {t["id"]: Technique(**t) for t in doc["techniques"]}
        self._v19: dict[str, list[str]] = {}
        if crosswalk:
            counts: dict[str, dict[str, int]] = {}
            for pair in crosswalk.get("technique_pairs", []):
                slot = counts.setdefault(pair["v19_id"], {})
                slot[pair["v18_id"]] = slot.get(pair["v18_id"], 0) + int(pair.get("rules", 0))
            # ambiguous files: once the known pairs are taken out, one removed + one added id is a pair
            for entry in crosswalk.get("ambiguous_files", []):
                removed = [i for i in entry["removed"] if not any(i in v for v in counts.values())]
                added = [i for i in entry["added"] if i not in counts]
                if len(removed) == 1 and len(added) == 1:
                    counts[added[0]] = {removed[0]: int(entry.get("rules", 0))}
            # most-used v18 id first: the one a single v19 id most often stood for
            self._v19 = {k: sorted(v, key=lambda i: (-v[i], i)) for k, v in counts.items()}

    # -- plain lookup -----------------------------------------------------------------------------
    def __contains__(self, technique_id: object) -> bool:
        return isinstance(technique_id, str) and technique_id in self._techniques

    def __len__(self) -> int:
        return len(self._techniques)

    def all(self) -> list[Technique]:
        return list(self._techniques.values())

    def active(self) -> list[Technique]:
        return [t for t in self._techniques.values() if t.active]

    def lookup(self, technique_id: str) -> Technique:
        """The record as stored (revoked and deprecated included); raises ``UnknownTechniqueError``."""
        tid = normalize_id(technique_id)
        try:
            return self._techniques[tid]
        except KeyError:
            raise UnknownTechniqueError(f"unknown ATT&CK technique {tid} (catalog v{self.version})") from None

    def v19_to_v18(self, technique_id: str) -> list[str]:
        """v18.1 ids a SigmaHQ v19 id stood for (most used first); empty when not a renamed v19 id."""
        return list(self._v19.get(normalize_id(technique_id), []))

    # -- validation -------------------------------------------------------------------------------
    def resolve(self, technique_id: str) -> Technique:
        """The active technique for an id: v19 ids via the crosswalk, revoked ids via their replacement."""
        tid = normalize_id(technique_id)
        if tid not in self._techniques and tid in self._v19:
            tid = self._v19[tid][0]
        seen: set[str] = set()
        tech = self.lookup(tid)
        while tech.revoked and tech.revoked_by and tech.id not in seen:
            seen.add(tech.id)
            tech = self.lookup(tech.revoked_by)
        if not tech.active:
            raise DeprecatedTechniqueError(f"ATT&CK technique {tech.id} is deprecated with no replacement")
        return tech

    def resolve_all(self, technique_ids: Iterable[str]) -> list[Technique]:
        """``resolve`` each id; every id a v19 id stood for is returned, in order, without repeats."""
        out: dict[str, Technique] = {}
        for raw in technique_ids:
            tid = normalize_id(raw)
            for cand in self._v19.get(tid, [tid]) if tid not in self._techniques else [tid]:
                tech = self.resolve(cand)
                out.setdefault(tech.id, tech)
        return list(out.values())

    def is_valid(self, technique_id: str) -> bool:
        try:
            self.resolve(technique_id)
        except AttackError:
            return False
        return True

    # -- tactics ----------------------------------------------------------------------------------
    def tactic(self, shortname: str) -> Tactic:
        try:
            return self._tactic_by_short[shortname]
        except KeyError:
            raise AttackError(f"unknown ATT&CK tactic {shortname!r}") from None

    def tactics_from_tags(self, tags: Iterable[str]) -> list[Tactic]:
        """v18.1 tactics named by Sigma tactic tags (``attack.credential-access``, v19 ``attack.stealth``)."""
        out: list[Tactic] = []
        for tag in tags:
            match = _TACTIC_TAG.match(tag.strip())
            if match is None:
                continue
            short = match.group(1).lower().replace("_", "-")
            tactic = self._tactic_by_short.get(V19_TACTICS.get(short, short))
            if tactic is not None and tactic not in out:
                out.append(tactic)
        return sorted(out, key=lambda t: t.order)

    def tactic_names(self, technique: Technique) -> list[str]:
        return [self._tactic_by_short[s].name for s in technique.tactics]

    def counts(self) -> dict[str, int]:
        techs = self._techniques.values()
        active = [t for t in techs if t.active]
        return {
            "tactics": len(self.tactics),
            "techniques": sum(1 for t in active if not t.is_subtechnique),
            "subtechniques": sum(1 for t in active if t.is_subtechnique),
            "deprecated": sum(1 for t in techs if t.deprecated and not t.revoked),
            "revoked": sum(1 for t in techs if t.revoked),
            "total": len(self._techniques),
            "v19_crosswalk_ids": len(self._v19),
        }


def technique_tags(tags: Iterable[str]) -> list[str]:
    """Technique ids among Sigma-style tags (``attack.t1059.001``), normalised, order kept."""
    out: list[str] = []
    for tag in tags:
        match = _TAG.match(tag.strip())
        if match and match.group(1).upper() not in out:
            out.append(match.group(1).upper())
    return out


def data_path(name: str) -> Path:
    return Path(str(resources.files("tools.attack") / "data" / name))


def read_catalog_document(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    doc: dict[str, Any] = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    return doc


@cache
def load_catalog() -> AttackCatalog:
    """The shipped catalog with the v19 crosswalk, loaded once per process."""
    crosswalk = json.loads(data_path(CROSSWALK_FILE).read_text(encoding="utf-8"))
    return AttackCatalog(read_catalog_document(data_path(CATALOG_FILE)), crosswalk)
