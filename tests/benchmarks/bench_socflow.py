"""``socflow bench`` as a benchmark (issue 12): orchestration overhead, storm economy, model batching and SIEM
throughput measured side by side in one run. Prints figures; asserts nothing about timings.

    .venv/bin/socflow bench [--out bench-results.json]          # the same, as the command
    .venv/bin/python -m pytest tests/benchmarks/bench_socflow.py -s
"""

from __future__ import annotations

from pathlib import Path

from socflow.evaluation.bench import run_bench


def test_socflow_bench(tmp_path: Path) -> None:
    """Benchmark (prints figures; ``make bench``)."""
    results = run_bench(tmp_path)
    print(results.to_json())
    assert {"overhead", "storm", "siem", "batching"} <= set(results.figures)
