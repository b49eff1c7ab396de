"""The SigmaHQ regression harness: each rule run over its own sample's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from socflow.errors import SiemError, SigmaConversionError
from tools.siem.embedded import EmbeddedSiem
from tools.siem.sigma_rules import compile_rule, parse_rule


@dataclass
class RegressionResult:
    samples: int = 0
    converted: int = 0
    fired: int = 0
    excluded: list[str] = field(default_factory=list)
    misses: list[tuple[str, str]] = field(default_factory=list)


def _rule_index(sigma_root: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in sigma_root.rglob("*.yml"):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("id: "):
                    index[line[4:].strip()] = path
                    break
    return index


def run_regression(samples_root: Path, sigma_root: Path) -> RegressionResult:
    result = RegressionResult()
    rules = _rule_index(sigma_root)
    for info_path in sorted(samples_root.rglob("info.yml")):
        info = yaml.safe_load(info_path.read_text(encoding="utf-8"))
        rule_id = str(info["rule_metadata"][0]["id"])
        sample_dir = info_path.parent
        evtx = sorted(sample_dir.glob("*.evtx"))
        name = str(sample_dir.relative_to(samples_root))
        if not evtx:
            kinds = sorted({p.suffix for p in sample_dir.iterdir() if p.name != "info.yml"})
            result.excluded.append(f"{name} (no .evtx sample: {', '.join(kinds)})")
            continue
        result.samples += 1
        rule_path = rules.get(rule_id)
        if rule_path is None:
            result.misses.append((name, f"rule {rule_id} not found in sigma rules"))
            continue
        try:
            compiled = compile_rule(parse_rule(rule_path.read_text(encoding="utf-8"), source=str(rule_path)))
        except SigmaConversionError as exc:
            result.misses.append((name, f"conversion failed: {exc}"))
            continue
        result.converted += 1
        with EmbeddedSiem(":memory:") as siem:
            siem.load(evtx)
            try:
                hits = siem.run_compiled(compiled)
            except SiemError as exc:
                result.misses.append((name, f"query failed: {exc}"))
                continue
        if hits:
            result.fired += 1
        else:
            result.misses.append((name, "rule did not fire on its sample"))
    return result
