"""Worked examples for ATT&CK retrieval: SigmaHQ rule titles and descriptions with their technique tags.

ATT&CK's own text says what a technique is; detection rules say how it looks in an alert ("Suspicious
Encoded PowerShell Command Line", "Credential Dumping via Comsvcs MiniDump"). The retrieval index
(``tools.attack.retrieval``) ranks techniques by both. The shipped file is derived from SigmaHQ (Detection
Rule License 1.1: each example keeps its rule id and author; see ``data/LICENSE-SIGMA.md``).

Every rule falls in one split by a hash of its id: ``dev`` (1 in 5: the attack-text development set,
``socflow/samples/eval/attack-text/sigma_dev.jsonl``), ``tune`` (1 in 5: for choosing the retrieval's
weights and thresholds) or ``index``. The shipped example file holds every rule; an evaluation holds its
own rows out of the index by id and by title (``TechniqueIndex(exclude=...)``), so a development row
never retrieves itself.

Rebuild (deterministic)::

    python -m tools.attack.examples ../shared/data/sigma \\
        --out tools/attack/data/sigma-examples.json.gz \\
        --dev socflow/samples/eval/attack-text/sigma_dev.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from tools.attack.catalog import data_path

EXAMPLES_FILE = "sigma-examples.json.gz"
SIGMA_COMMIT = "8eaafff1f2845a696050e05e72ba1140ee190698"
FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
MAX_TEXT = 2000


class Example(BaseModel):
    """One rule: its words and the technique ids its authors tagged (ATT&CK v19 spelling)."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    title: str
    description: str
    techniques: tuple[str, ...]
    author: str = ""

    @property
    def text(self) -> str:
        return f"{self.title}. {self.description}".strip()


def split_of(rule_id: str) -> str:
    """``dev``, ``tune`` or ``index``: a stable 1/5, 1/5, 3/5 split by a hash of the rule id."""
    bucket = int(hashlib.sha256(rule_id.encode()).hexdigest(), 16) % 5
    return {0: "dev", 1: "tune"}.get(bucket, "index")


def title_key(text: str) -> str:
    """A rule title folded for the held-out-by-title check (case and spacing)."""
    return _SPACE.sub(" ", text.split(". ", 1)[0]).strip().lower()


def read_rules(sigma_dir: Path) -> list[Example]:
    """Every rule under the SigmaHQ folders that carries at least one technique tag, sorted by id."""
    out: dict[str, Example] = {}
    for folder in FOLDERS:
        for path in sorted((sigma_dir / folder).rglob("*.yml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not doc.get("id") or not doc.get("title"):
                continue
            tags = [m.group(1).upper() for t in doc.get("tags") or [] if (m := _TAG.match(str(t)))]
            if not tags:
                continue
            rule_id = str(doc["id"])
            out[rule_id] = Example(
                rule_id=rule_id,
                title=_SPACE.sub(" ", str(doc["title"])).strip()[:300],
                description=_SPACE.sub(" ", str(doc.get("description") or "")).strip()[:MAX_TEXT],
                techniques=tuple(dict.fromkeys(tags)),
                author=str(doc.get("author") or "")[:300],
            )
    return [out[k] for k in sorted(out)]


def write_examples(examples: list[Example], path: Path) -> None:
    doc: dict[str, Any] = {
        "source": f"github.com/SigmaHQ/sigma@{SIGMA_COMMIT}",
        "licence": "Detection Rule License 1.1 (LICENSE-SIGMA.md); authors kept per example",
        "examples": [e.model_dump(mode="json") for e in examples],
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(data)


@cache
def load_examples() -> tuple[Example, ...]:
    """The shipped examples (every split)."""
    path = data_path(EXAMPLES_FILE)
    if not path.is_file():
        return ()
    doc = json.loads(gzip.decompress(path.read_bytes()))
    return tuple(Example.model_validate(e) for e in doc["examples"])


def dev_rows(examples: list[Example], split: str = "dev") -> list[dict[str, Any]]:
    return [
        {"id": e.rule_id, "text": e.text, "techniques": list(e.techniques), "author": e.author}
        for e in examples
        if split_of(e.rule_id) == split
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sigma_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dev", type=Path, help="write the dev split as attack-text JSONL")
    parser.add_argument("--tune", type=Path, help="write the tune split as attack-text JSONL")
    args = parser.parse_args(argv)
    examples = read_rules(args.sigma_dir)
    write_examples(examples, args.out)
    for split, target in (("dev", args.dev), ("tune", args.tune)):
        if target is not None:
            rows = dev_rows(examples, split)
            target.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
            print(f"{split}: {len(rows)} rows -> {target}")
    print(f"{len(examples)} examples -> {args.out}")


if __name__ == "__main__":
    main()
