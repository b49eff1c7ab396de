"""Build the compact ATT&CK catalog the package ships from MITRE's STIX data.

Input: a directory of per-object STIX files (the ``mitre/cti`` layout, ``<type>/<stix-id>.json``, each a
one-object bundle) or a single STIX bundle file. Optionally the v17.1 attack-patterns, whose free-text
``x_mitre_detection`` and ``x_mitre_data_sources`` v18 dropped (kept as ``legacy_*`` fields, useful text
for retrieval).

Output: one JSON document, serialised deterministically (sorted keys, no whitespace, gzip ``mtime=0``)
so that regenerating it and diffing is exact::

    python -m tools.attack.build ../shared/data/attack/stix/v18.1/enterprise-attack \\
        --legacy ../shared/data/attack/stix/v17.1/enterprise-attack --version 18.1 \\
        --out tools/attack/data/enterprise-attack-v18.1.json.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from socflow.errors import AttackError

CATALOG_FORMAT = 1
ATTRIBUTION = (
    "© 2025 The MITRE Corporation. This work is reproduced and distributed with the permission of The MITRE "
    "Corporation. ATT&CK® is a registered trademark of The MITRE Corporation. Terms of use: "
    "https://attack.mitre.org/resources/legal-and-branding/terms-of-use/ (see LICENSE-ATTACK.txt)."
)
_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_CODE = re.compile(r"</?code>")

Obj = dict[str, Any]


def clean_description(text: str | None) -> str:
    """Drop ``(Citation: ...)`` markers and ``<code>`` tags; keep the prose and Markdown links."""
    return _CODE.sub("", _CITATION.sub("", text or "")).strip()


def load_stix_objects(path: Path) -> list[Obj]:
    """All STIX objects under ``path`` (a per-object directory tree or one bundle file)."""
    files: Iterable[Path] = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    by_id: dict[str, Obj] = {}
    for file in files:
        doc = json.loads(file.read_text(encoding="utf-8"))
        objects = doc.get("objects", []) if doc.get("type") == "bundle" else [doc]
        for obj in objects:
            old = by_id.get(obj["id"])
            if old is None or obj.get("modified", "") >= old.get("modified", ""):
                by_id[obj["id"]] = obj
    if not by_id:
        raise AttackError(f"no STIX objects found under {path}")
    return list(by_id.values())


def _external_id(obj: Obj) -> str:
    for ref in obj.get("external_references", []):
        if ref.get("source_name") in ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack"):
            return str(ref.get("external_id", ""))
    return ""


def _tactics(objs: list[Obj]) -> list[Obj]:
    by_stix = {o["id"]: o for o in objs if o["type"] == "x-mitre-tactic"}
    matrices = [o for o in objs if o["type"] == "x-mitre-matrix"]
    refs = matrices[0]["tactic_refs"] if matrices else sorted(by_stix)
    out = []
    for order, ref in enumerate(refs, start=1):
        t = by_stix[ref]
        out.append(
            {"id": _external_id(t), "shortname": t["x_mitre_shortname"], "name": t["name"], "order": order}
        )
    return out


def _analytics(objs: list[Obj], components: dict[str, Obj]) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for o in objs:
        if o["type"] != "x-mitre-analytic" or o.get("revoked") or o.get("x_mitre_deprecated"):
            continue
        sources = [
            {
                "data_component": components.get(ref["x_mitre_data_component_ref"], {}).get("name", ""),
                "name": ref.get("name", ""),
                "channel": ref.get("channel", ""),
            }
            for ref in o.get("x_mitre_log_source_references", [])
        ]
        out[o["id"]] = {
            "id": _external_id(o),
            "platforms": sorted(o.get("x_mitre_platforms", [])),
            "description": clean_description(o.get("description")),
            "log_sources": sorted(sources, key=lambda s: (s["data_component"], s["name"], s["channel"])),
        }
    return out


def build_catalog(
    stix: Path, *, attack_version: str, legacy: Path | None = None, source: dict[str, str] | None = None
) -> Obj:
    """The catalog document for the STIX data under ``stix`` (see the module docstring)."""
    objs = load_stix_objects(stix)
    by_stix = {o["id"]: o for o in objs}
    tactics = _tactics(objs)
    tactic_order = {t["shortname"]: t["order"] for t in tactics}
    components = {o["id"]: o for o in objs if o["type"] == "x-mitre-data-component"}
    analytics = _analytics(objs, components)

    parent: dict[str, str] = {}
    revoked_by: dict[str, str] = {}
    detects: dict[str, list[Obj]] = defaultdict(list)
    mitigates: dict[str, list[Obj]] = defaultdict(list)
    for r in objs:
        if r["type"] != "relationship":
            continue
        structural = r["relationship_type"] in ("subtechnique-of", "revoked-by")
        if not structural and (r.get("revoked") or r.get("x_mitre_deprecated")):
            continue
        src, dst, kind = by_stix.get(r["source_ref"]), by_stix.get(r["target_ref"]), r["relationship_type"]
        if src is None or dst is None:
            continue
        if kind == "subtechnique-of":
            parent[src["id"]] = _external_id(dst)
        elif kind == "revoked-by":
            revoked_by[src["id"]] = _external_id(dst)
        elif kind == "detects" and src["type"] == "x-mitre-detection-strategy":
            detects[dst["id"]].append(src)
        elif kind == "mitigates" and src["type"] == "course-of-action":
            mitigates[dst["id"]].append(src)

    legacy_by_stix: dict[str, Obj] = {}
    if legacy is not None:
        legacy_by_stix = {o["id"]: o for o in load_stix_objects(legacy) if o["type"] == "attack-pattern"}

    techniques = []
    for o in objs:
        if o["type"] != "attack-pattern":
            continue
        phases = {p["phase_name"] for p in o.get("kill_chain_phases", []) if p["phase_name"] in tactic_order}
        strategies = []
        for det in detects.get(o["id"], []):
            if det.get("revoked") or det.get("x_mitre_deprecated"):
                continue
            items = [analytics[a] for a in det.get("x_mitre_analytic_refs", []) if a in analytics]
            strategies.append(
                {
                    "id": _external_id(det),
                    "name": det["name"],
                    "analytics": sorted(items, key=lambda a: a["id"]),
                }
            )
        strategies.sort(key=lambda s: s["id"])
        log_sources = {s["name"] for d in strategies for a in d["analytics"] for s in a["log_sources"]}
        data_components = {
            s["data_component"] for d in strategies for a in d["analytics"] for s in a["log_sources"]
        }
        old = legacy_by_stix.get(o["id"], {})
        techniques.append(
            {
                "id": _external_id(o),
                "name": o["name"],
                "is_subtechnique": bool(o.get("x_mitre_is_subtechnique")),
                "parent_id": parent.get(o["id"])
                or (_external_id(o).split(".")[0] if o.get("x_mitre_is_subtechnique") else None),
                "tactics": sorted(phases, key=tactic_order.__getitem__),
                "platforms": sorted(o.get("x_mitre_platforms", [])),
                "description": clean_description(o.get("description")),
                "detection_strategies": strategies,
                "data_components": sorted(data_components - {""}),
                "log_sources": sorted(log_sources - {""}),
                "mitigations": sorted(
                    ({"id": _external_id(m), "name": m["name"]} for m in mitigates.get(o["id"], [])),
                    key=lambda m: m["id"],
                ),
                "deprecated": bool(o.get("x_mitre_deprecated")),
                "revoked": bool(o.get("revoked")),
                "revoked_by": revoked_by.get(o["id"]),
                "legacy_detection": clean_description(old.get("x_mitre_detection")),
                "legacy_data_sources": sorted(old.get("x_mitre_data_sources", [])),
                "version": o.get("x_mitre_version", ""),
                "modified": o.get("modified", ""),
            }
        )
    techniques.sort(key=lambda t: t["id"])
    return {
        "format": CATALOG_FORMAT,
        "domain": "enterprise-attack",
        "attack_version": attack_version,
        "attribution": ATTRIBUTION,
        "source": source or {},
        "tactics": tactics,
        "techniques": techniques,
    }


def serialize(doc: Obj) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact separators, UTF-8)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def write_catalog(doc: Obj, out: Path) -> None:
    data = serialize(doc)
    out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0) if out.suffix == ".gz" else data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stix", type=Path, help="per-object STIX directory or a STIX bundle file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", required=True, help="ATT&CK release, e.g. 18.1")
    parser.add_argument("--legacy", type=Path, help="v17.1 STIX (attack-patterns) for the legacy text fields")
    parser.add_argument("--source", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    source = dict(item.split("=", 1) for item in args.source)
    write_catalog(
        build_catalog(args.stix, attack_version=args.version, legacy=args.legacy, source=source), args.out
    )


if __name__ == "__main__":
    main()
