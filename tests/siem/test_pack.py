"""The shipped SigmaHQ pack, the conversion cache, the batch engine's equivalence with the one-rule path,
and the ``siem rules`` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.siem.cli import app
from tools.siem.detect import DetectReport, detect
from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import BatchDetector, detect_batched
from tools.siem.pack import (
    FAILED,
    SHIPPED_PACK,
    UNSUPPORTED,
    ConversionCache,
    RuleFilter,
    RuleSet,
    build_pack,
    load_rule_set,
    read_info,
)

SAMPLE_FILES = 40


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return load_rule_set()


@pytest.fixture(scope="module")
def sample_store(regression_dir: Path, pack: RuleSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Regression samples of enabled rules (each fires its own rule) plus some of other rules."""
    enabled = {r.rule_id for r in pack.rules if pack.rule_filter.enabled(r)}
    files = sorted(regression_dir.rglob("*.json"))
    chosen = [p for p in files if p.stem in enabled][: SAMPLE_FILES // 2]
    chosen += [p for p in files if p.stem not in enabled][: SAMPLE_FILES // 4]
    path = tmp_path_factory.mktemp("pack") / "siem.db"
    with EmbeddedSiem(path) as siem:
        siem.load(chosen)
    return path


def test_shipped_pack_is_versioned_attributed_and_has_the_windows_rules(pack: RuleSet) -> None:
    info = read_info(SHIPPED_PACK)
    assert info.commit == "8eaafff1f2845a696050e05e72ba1140ee190698"
    assert "DRL" in (SHIPPED_PACK / "LICENSE-SIGMA.md").read_text(encoding="utf-8")
    assert len(pack.windows()) >= 2000
    enabled = pack.enabled()
    assert len(enabled) >= 2000
    # documented defaults: stable/test, medium and up, no threat-hunting rules
    for rule in pack.rules:
        if pack.rule_filter.enabled(rule):
            assert rule.status in ("stable", "test") and rule.level in ("medium", "high", "critical")
            assert rule.folder != "rules-threat-hunting"
    # nothing silently dropped: every rule file of the three folders is a record, with a reason if not run
    assert len(pack.rules) == 3141 + 473 + 140
    for rule in pack.rules:
        assert rule.compiled is not None or (rule.error_kind and rule.error)
    assert {r.error_kind for r in pack.failures()} <= {FAILED, "invalid_rule"}
    assert all(r.error_kind == UNSUPPORTED and "log source" in (r.error or "") for r in pack.unsupported())


def test_filters_and_overrides(pack: RuleSet) -> None:
    hunting = next(r for r in pack.windows() if r.folder == "rules-threat-hunting")
    assert not RuleFilter().enabled(hunting)
    assert RuleFilter(folders=("rules-threat-hunting",), statuses=(hunting.status,),
                      min_level="informational").enabled(hunting)  # fmt: skip
    assert RuleFilter(overrides={hunting.rule_id: True}).enabled(hunting)
    on = next(r for r in pack.windows() if RuleFilter().enabled(r))
    assert not RuleFilter(overrides={on.rule_id: False}).enabled(on)


def test_conversion_cache_reuses_unchanged_rules_by_content_hash(sigma_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "release"
    rules = sorted((sigma_dir / "rules" / "windows" / "process_creation").glob("*.yml"))[:6]
    for path in rules:
        target = source / "rules" / "windows" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    cache_path = tmp_path / "cache.json.gz"
    cache = ConversionCache(cache_path)
    info, built = build_pack(source, tmp_path / "pack", commit="abc123", cache=cache)
    cache.save()
    assert (cache.hits, cache.misses) == (0, 6)
    assert info.commit == "abc123" and len(built) == 6
    # change one rule: only that one is converted again
    changed = source / "rules" / "windows" / rules[0].name
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# local note\n", encoding="utf-8")
    again = ConversionCache(cache_path)
    build_pack(source, tmp_path / "pack", commit="abc124", cache=again)
    assert (again.hits, again.misses) == (5, 1)
    assert read_info(tmp_path / "pack").commit == "abc124"


def test_batch_engine_raises_the_same_alerts_as_the_one_rule_path(sample_store: Path, pack: RuleSet) -> None:
    rules = pack.enabled()
    with EmbeddedSiem(sample_store) as siem:
        one = [a.model_dump() for a in detect(siem, rules, DetectReport())]
        report = DetectReport()
        batched = [a.model_dump() for a in detect_batched(siem, rules, report)]
        assert len(one) >= SAMPLE_FILES // 2  # every chosen sample fires at least its own rule
        assert batched == one
        # small batches (several rowid ranges) find the same matches
        detector = BatchDetector(rules)
        merged: dict[str, list[int]] = {}
        for _, found in detector.iter_batches(siem, batch=7):
            for rule_id, rowids in found.items():
                merged.setdefault(rule_id, []).extend(rowids)
        whole = detector.matches(siem, 0, siem.max_rowid())
        assert merged == whole


def test_rules_cli_lists_pack_version_counts_and_failures(
    sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCFLOW_DETECTION__PACK_DIR", str(tmp_path / "no-update"))
    runner = CliRunner()
    result = runner.invoke(app, ["rules", "list", "--siem-path", str(sample_store), "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "pack sigmahq@8eaafff1f284" in result.output
    assert "Windows rules available" in result.output
    listed = json.loads(result.stdout)  # one JSON document on stdout; the summary goes to stderr
    rows = listed["rules"]
    assert listed["pack"]["version"] == "sigmahq@8eaafff1f284" and listed["matching"] > 3
    assert len(rows) == 3 and all(r["enabled"] and r["status"] for r in rows)
    store = ["--siem-path", str(sample_store)]
    failed = runner.invoke(app, ["rules", "list", "--show", "failed", "--json", *store])
    reasons = json.loads(failed.stdout)["rules"]
    assert failed.exit_code == 0 and reasons and all(r["error"] for r in reasons)
    rule_id = rows[0]["rule_id"]
    assert runner.invoke(app, ["rules", "disable", rule_id, "--siem-path", str(sample_store)]).exit_code == 0
    shown = runner.invoke(app, ["rules", "show", rule_id, "--siem-path", str(sample_store)])
    assert "enabled: False (by override)" in shown.output and "title:" in shown.output
    assert runner.invoke(app, ["rules", "enable", rule_id, "--siem-path", str(sample_store)]).exit_code == 0
    shown = runner.invoke(app, ["rules", "show", rule_id, "--siem-path", str(sample_store)])
    assert "enabled: True (by override)" in shown.output
    assert runner.invoke(app, ["rules", "show", "no-such-rule", *store]).exit_code == 1


def test_custom_rule_folder_is_converted_through_the_cache(tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "mine.yml").write_text(
        "title: Mine\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\nlevel: high\n"
        "logsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel:\n    Image|endswith: '\\evil.exe'\n  condition: sel\n",
        encoding="utf-8",
    )
    (custom / "broken.yml").write_text("title: Broken\ndetection: {}\n", encoding="utf-8")
    cache = tmp_path / "cache.json.gz"
    rs = load_rule_set(custom_dirs=[custom], cache_path=cache, include_pack=False)
    assert [r.rule_id for r in rs.enabled() if True] == ["11111111-2222-3333-4444-555555555555"]
    assert [r.path.endswith("broken.yml") for r in rs.failures()] == [True]
    assert cache.is_file()
    again = ConversionCache(cache)
    assert len(again.records) == 2
