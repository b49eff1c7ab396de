"""The shipped ATT&CK catalog: regenerated from STIX exactly, lookup and validation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from socflow.errors import AttackError, UnknownTechniqueError
from tools.attack.build import build_catalog, load_stix_objects, serialize, write_catalog
from tools.attack.catalog import (
    CATALOG_FILE,
    CROSSWALK_FILE,
    AttackCatalog,
    DeprecatedTechniqueError,
    MalformedTechniqueIdError,
    data_path,
    load_catalog,
    read_catalog_document,
    technique_tags,
)


@pytest.fixture(scope="module")
def catalog() -> AttackCatalog:
    return load_catalog()


def test_shipped_catalog_is_exactly_what_the_build_script_writes(shared_data: Path, tmp_path: Path) -> None:
    shipped_path = data_path(CATALOG_FILE)
    shipped = read_catalog_document(shipped_path)
    stix = shared_data / "attack" / "stix"
    doc = build_catalog(
        stix / "v18.1" / "enterprise-attack",
        attack_version=shipped["attack_version"],
        legacy=stix / "v17.1" / "enterprise-attack",
        source=shipped["source"],
    )
    assert serialize(doc) == gzip.decompress(shipped_path.read_bytes())
    out = tmp_path / CATALOG_FILE
    write_catalog(doc, out)
    assert out.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0: byte-for-byte reproducible
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(shipped_path.read_bytes())


def test_shipped_copies_match_the_shared_originals(shared_data: Path) -> None:
    for name in (CROSSWALK_FILE, "LICENSE-ATTACK.txt"):
        assert data_path(name).read_bytes() == (shared_data / "attack" / name).read_bytes()
    assert "MITRE" in load_catalog().attribution


def test_counts_and_tactic_matrix_order(catalog: AttackCatalog) -> None:
    counts = catalog.counts()
    assert (counts["techniques"], counts["subtechniques"], counts["revoked"], counts["tactics"]) == (
        216,
        475,
        132,
        14,
    )
    assert [t.order for t in catalog.tactics] == list(range(1, 15))
    assert catalog.tactics[0].name == "Reconnaissance" and catalog.tactics[-1].name == "Impact"
    # Valid Accounts spans four tactics; they come back in matrix column order
    names = catalog.tactic_names(catalog.resolve("T1078"))
    assert names == ["Initial Access", "Persistence", "Privilege Escalation", "Defense Evasion"]


@pytest.mark.parametrize(
    ("tid", "name", "tactics"),
    [
        ("T1059.001", "PowerShell", ["Execution"]),
        ("T1059.003", "Windows Command Shell", ["Execution"]),
        ("T1003.001", "LSASS Memory", ["Credential Access"]),
        ("T1003.002", "Security Account Manager", ["Credential Access"]),
        ("T1110", "Brute Force", ["Credential Access"]),  # not Initial Access
    ],
)
def test_the_cookbook_ids_that_a_model_got_wrong(
    catalog: AttackCatalog, tid: str, name: str, tactics: list[str]
) -> None:
    tech = catalog.resolve(tid)
    assert (tech.name, catalog.tactic_names(tech)) == (name, tactics)


def test_technique_record_carries_detection_and_mitigation_data(catalog: AttackCatalog) -> None:
    tech = catalog.resolve("T1003.001")
    assert tech.parent_id == "T1003" and tech.is_subtechnique
    assert "Windows" in tech.platforms
    assert tech.detection_strategies and tech.detection_strategies[0].id.startswith("DET")
    assert any(a.log_sources for s in tech.detection_strategies for a in s.analytics)
    assert "Process Access" in tech.data_components
    assert any(m.id.startswith("M") for m in tech.mitigations)
    assert "(Citation:" not in tech.description and "lsass" in tech.description.lower()


def test_revoked_ids_resolve_to_their_replacement(catalog: AttackCatalog) -> None:
    old = catalog.lookup("T1086")
    assert old.revoked and old.revoked_by == "T1059.001"
    assert catalog.resolve("T1086").id == "T1059.001"
    assert catalog.resolve("attack.t1086").id == "T1059.001"


def test_unknown_malformed_and_deprecated_ids_raise_specific_errors(catalog: AttackCatalog) -> None:
    with pytest.raises(UnknownTechniqueError) as unknown:
        catalog.resolve("T1999")
    assert unknown.value.code == "unknown_technique"
    with pytest.raises(MalformedTechniqueIdError):
        catalog.resolve("PowerShell")
    deprecated = next(t for t in catalog.all() if t.deprecated and not t.revoked)
    with pytest.raises(DeprecatedTechniqueError):
        catalog.resolve(deprecated.id)
    assert isinstance(DeprecatedTechniqueError("x"), AttackError)
    assert not catalog.is_valid("T1999") and catalog.is_valid("T1110.001")


def test_sigma_v19_ids_go_through_the_crosswalk(catalog: AttackCatalog) -> None:
    assert "T1685.005" not in catalog
    assert catalog.resolve("attack.t1685.005").id == "T1070.001"
    assert catalog.v19_to_v18("T1685")[0] == "T1562.001"  # the pair most rules used
    assert catalog.resolve("T1690").id == "T1562.003"  # paired by elimination from an ambiguous file
    assert {t.id for t in catalog.resolve_all(["T1685"])} == {"T1562.001", "T1562", "T1562.006"}
    tactics = catalog.tactics_from_tags(
        ["attack.stealth", "attack.execution", "attack.t1059", "attack.g0032"]
    )
    assert [t.name for t in tactics] == ["Execution", "Defense Evasion"]
    assert technique_tags(["attack.execution", "attack.t1059.001", "attack.g0032", "attack.T1059.001"]) == [
        "T1059.001"
    ]


def test_build_reads_a_single_stix_bundle_too(shared_data: Path, tmp_path: Path) -> None:
    stix = shared_data / "attack" / "stix" / "v18.1" / "enterprise-attack"
    keep = {"x-mitre-tactic", "x-mitre-matrix"}
    objects = [o for o in load_stix_objects(stix) if o["type"] in keep]
    pattern = json.loads(next((stix / "attack-pattern").glob("*.json")).read_text())["objects"][0]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--x", "objects": [*objects, pattern]}))
    doc = build_catalog(bundle, attack_version="test")
    assert [t["id"] for t in doc["techniques"]] == [
        next(r["external_id"] for r in pattern["external_references"] if r["source_name"] == "mitre-attack")
    ]
    assert len(doc["tactics"]) == 14
