"""Acceptance: every SigmaHQ regression rule over its own sample's events fires for >= 90% of samples."""

from __future__ import annotations

from pathlib import Path

from tests.siem.regression import run_regression


def test_regression_rules_fire_on_their_own_samples(regression_dir: Path, sigma_dir: Path) -> None:
    result = run_regression(regression_dir, sigma_dir)
    conversion_rate = result.converted / result.samples
    firing_rate = result.fired / result.samples  # a rule that fails to convert counts as a miss
    print(f"\nsamples: {result.samples} (Windows EVTX)")
    print(f"excluded: {len(result.excluded)}")
    for item in result.excluded:
        print(f"  - {item}")
    print(f"conversion rate: {result.converted}/{result.samples} = {conversion_rate:.1%}")
    print(f"firing rate:     {result.fired}/{result.samples} = {firing_rate:.1%}")
    for name, reason in result.misses:
        print(f"  miss {name}: {reason}")
    assert result.samples >= 200
    assert any("cisco" in item for item in result.excluded)
    assert firing_rate >= 0.90
