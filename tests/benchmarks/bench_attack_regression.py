"""ATT&CK mapping hit rates on the SigmaHQ regression samples (issue 5 acceptance).

    .venv/bin/python tests/benchmarks/bench_attack_regression.py [--shared-data PATH]

Each sample is the positive test event of one Sigma rule; its label is that rule's ``attack.t*`` tags (ATT&CK
v19 ids, related to v18.1 through the shipped crosswalk). ``.evtx``/``.json`` pairs are the same events, so
only the ``.json`` rows count. Two runs:

* ``rule tags``: mapper candidates from the rule's tags plus retrieval over the rule title and description.
  The first number is circular (the label *is* the tags); it checks the tag path end to end.
* ``rule text only``: BM25 over the rule title and description, no tags (how alert text alone fares).
* ``retrieval only``: BM25 over text built from the event's own fields (Image, CommandLine, ...), no rule
  title, no tags.

Hit@k: one of the first k candidates is a label id (full) or shares a label's parent technique (parent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.attack.catalog import AttackCatalog, load_catalog  # noqa: E402
from tools.attack.mapper import MappingInput, candidate_list  # noqa: E402
from tools.attack.query import event_query_text  # noqa: E402
from tools.attack.retrieval import get_index  # noqa: E402


def event_text(path: Path) -> str:
    """Query text from the event file's own content (one or more concatenated JSON documents)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    decoder, pos, parts = json.JSONDecoder(), 0, []
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        parts.append(event_query_text(doc))
    return "\n".join(parts)


def label_ids(catalog: AttackCatalog, raw: list[str]) -> set[str]:
    out: set[str] = set()
    for tid in raw:
        try:
            out |= {t.id for t in catalog.resolve_all([tid])}
        except Exception:  # an id neither catalog nor crosswalk knows: counted as unmatched
            print(f"  label {tid} not resolvable", file=sys.stderr)
    return out


def parent(tid: str) -> str:
    return tid.split(".")[0]


def hits(ranked: list[str], labels: set[str], k: int, *, parent_level: bool) -> bool:
    if parent_level:
        return bool({parent(t) for t in ranked[:k]} & {parent(t) for t in labels})
    return bool(set(ranked[:k]) & labels)


def run(shared_data: Path) -> dict[str, dict[str, float]]:
    """Print and return the hit-rate table."""
    logs, sigma = shared_data / "logs", shared_data / "sigma"
    catalog, index = load_catalog(), get_index()

    rows = [json.loads(line) for line in (logs / "labels.jsonl").read_text().splitlines() if line.strip()]
    samples = [r for r in rows if r["file"].startswith("sigma-regression/") and r["format"] == "json"]
    untagged = [r for r in samples if not r["technique_ids"]]
    samples = [r for r in samples if r["technique_ids"]]
    runs: dict[str, list[tuple[list[str], set[str]]]] = {
        "rule tags": [],
        "rule text only": [],
        "retrieval only": [],
    }
    for r in samples:
        labels = label_ids(catalog, r["technique_ids"])
        rule = yaml.safe_load((sigma / r["rule_path"]).read_text(encoding="utf-8"))
        inp = MappingInput(
            text=f"{rule.get('title', '')}\n{rule.get('description', '')}", rule_tags=rule.get("tags", [])
        )
        cands, _ = candidate_list(inp, catalog=catalog, index=index, k=3)
        runs["rule tags"].append(([c.id for c in cands], labels))
        runs["rule text only"].append(([h.id for h in index.search(inp.text, 3)], labels))
        runs["retrieval only"].append(([h.id for h in index.search(event_text(logs / r["file"]), 3)], labels))

    print(
        f"SigmaHQ regression samples: {len(samples)} with technique labels ({len(untagged)} untagged skipped)"
    )
    print(f"{'run':<16} {'top1 full':>10} {'top3 full':>10} {'top1 parent':>12} {'top3 parent':>12}")
    table: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        row = table.setdefault(name, {})
        for k, level in ((1, False), (3, False), (1, True), (3, True)):
            hit = sum(hits(ranked, labels, k, parent_level=level) for ranked, labels in results)
            row[f"top{k} {'parent' if level else 'full'}"] = hit / len(results)
        cells = [f"{row[c]:.1%}" for c in ("top1 full", "top3 full", "top1 parent", "top3 parent")]
        print(f"{name:<16} {cells[0]:>10} {cells[1]:>10} {cells[2]:>12} {cells[3]:>12}")
    return table


def test_regression_hit_rates(shared_data: Path) -> None:
    """Benchmark (prints figures; ``make bench``). No thresholds, only that the tag path is exact."""
    table = run(shared_data)
    assert table["rule tags"]["top1 full"] == 1.0


def main() -> None:
    default = os.environ.get("SOCFLOW_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared-data", type=Path, default=Path(default))
    run(parser.parse_args().shared_data)


if __name__ == "__main__":
    main()
