"""The prepared GPU check runs on CPU with ``--tiny``, so that it cannot rot between device loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model]
pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "benchmarks" / "gpu_check.sh"


def test_gpu_check_tiny_runs_on_cpu(tmp_path: Path) -> None:
    figures = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONWARNINGS": "error::FutureWarning"}
    proc = subprocess.run(
        [str(SCRIPT), "--tiny", "--requests", "4", "--json", str(figures)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "throughput ratio (concurrent / sequential)" in proc.stdout
    assert "tok/s" in proc.stdout and "peak" in proc.stdout
    result = json.loads(figures.read_text(encoding="utf-8"))
    assert result["same_outputs"] is True
    assert result["requests"] == 4
    assert max(result["batch_sizes"]) > 1, "the concurrent requests should share forward passes"
    assert result["sequential_tokens"] > 0 and result["concurrent_tokens"] == result["sequential_tokens"]
    assert result["ratio"] > 0


def test_gpu_check_is_documented() -> None:
    text = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "gpu_check.sh" in text
