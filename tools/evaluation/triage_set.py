"""Build a labelled triage set from the shared Windows logs: Sigma alerts labelled true or false positive.

How it is built (``python -m tools.evaluation.triage_set ../shared/data/logs --out triage-labelled.jsonl``):

- every log file is loaded into a fresh in-memory embedded SIEM and the shipped SigmaHQ pack's enabled
  rules run over it (``detect_batched``); one alert per file, rule and host (the same alerts
  ``socflow siem detect`` emits);
- ``evtx-attack-samples/``: captures of one attack each (EVTX-ATTACK-SAMPLES) — every alert is labelled
  ``true_positive``;
- ``security-datasets/``: minutes of a whole host's telemetry around one attack (OTRF Security-Datasets),
  mostly benign background — an alert whose rule shares a parent technique or a tactic with the dataset's
  ``attack_mappings`` labels (``labels.csv``) is ``true_positive``, any other is ``false_positive``.
- ``sigma-regression/`` is left out: each file is a rule's own positive test sample.

The labels are derived from each source's own metadata, not judged by a person: an attack capture can
hold a benign event that a rule flags, and a background alert can be attack activity the dataset's labels
do not name. The rows are built on demand from ``../shared/data/logs`` and never shipped (part of the
data is GPL-3.0); the raw events are not copied into the rows (title, description, rule and entities).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from tools.attack import load_catalog
from tools.attack.catalog import V19_TACTICS, technique_tags
from tools.siem.detect import DetectReport
from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import detect_batched
from tools.siem.pack import load_rule_set

ATTACK_DIR = "evtx-attack-samples"
BACKGROUND_DIR = "security-datasets"
SUFFIXES = (".evtx", ".json", ".jsonl", ".zip", ".gz")


def _parents(ids: set[str]) -> set[str]:
    return {i.split(".")[0] for i in ids}


def _rule_techniques(tags: list[str]) -> set[str]:
    catalog = load_catalog()
    out: set[str] = set()
    for tid in technique_tags(tags):
        try:
            out |= {t.id for t in catalog.resolve_all([tid])}
        except Exception:
            continue
    return out


def _rule_tactics(tags: list[str]) -> set[str]:
    out = set()
    for tag in tags:
        name = tag.lower().removeprefix("attack.")
        if not name.startswith("t") or not name[1:2].isdigit():
            out.add(V19_TACTICS.get(name, name))
    return out


def _dataset_labels(logs: Path) -> dict[str, tuple[set[str], set[str]]]:
    """file -> (technique ids v18.1, tactic short names) for the security-datasets rows of labels.csv."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    with (logs / "labels.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["file"].startswith(BACKGROUND_DIR):
                techs = {t for t in (row.get("technique_ids_v18_1") or "").split(";") if t}
                tactics = {
                    t.strip().lower().replace(" ", "-") for t in (row.get("tactics") or "").split(";") if t
                }
                out[row["file"]] = (techs, tactics)
    return out


def build(logs: Path, *, limit_per_file: int = 25, max_true_positives: int = 300) -> list[dict[str, Any]]:
    """The rows (see the module docstring); at most ``max_true_positives`` of the true positives, chosen by
    a hash of each alert (the false positives are the scarce class and are all kept)."""
    rules = load_rule_set().enabled()
    labels = _dataset_labels(logs)
    rows: list[dict[str, Any]] = []
    files = sorted(p for p in (logs / ATTACK_DIR).rglob("*") if p.suffix.lower() in SUFFIXES)
    files += sorted(logs / f for f in labels)
    for path in files:
        rel = path.relative_to(logs).as_posix()
        with EmbeddedSiem(":memory:") as siem:
            try:
                siem.load([path])
            except Exception:
                continue
            alerts = list(detect_batched(siem, rules, DetectReport()))[:limit_per_file]
        for alert in alerts:
            if rel in labels:
                techs, tactics = labels[rel]
                related = bool(_parents(_rule_techniques(alert.rule.tags)) & _parents(techs)) or bool(
                    _rule_tactics(alert.rule.tags) & tactics
                )
                label = "true_positive" if related else "false_positive"
            else:
                label = "true_positive"
            doc = alert.model_dump(mode="json", exclude={"raw"})
            doc["source_ref"] = hashlib.sha256(
                f"{rel}|{alert.rule.id}|{doc['entities']}".encode()
            ).hexdigest()[:24]
            rows.append({"alert": doc, "label": label, "file": rel})
    positives = sorted(
        (r for r in rows if r["label"] == "true_positive"), key=lambda r: r["alert"]["source_ref"]
    )
    keep = {id(r) for r in positives[:max_true_positives]}
    return [r for r in rows if r["label"] != "true_positive" or id(r) in keep]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Labelled triage alerts from the shared Windows logs.")
    parser.add_argument("logs", type=Path, help="the shared logs folder (../shared/data/logs)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-true-positives", type=int, default=300)
    args = parser.parse_args(argv)
    rows = build(args.logs, max_true_positives=args.max_true_positives)
    args.out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    counts = Counter(r["label"] for r in rows)
    print(f"{len(rows)} rows -> {args.out}: {dict(counts)}")


if __name__ == "__main__":
    main()
