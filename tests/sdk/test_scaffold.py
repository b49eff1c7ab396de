"""Acceptance: ``socflow workflow new`` makes a package whose own test passes and that discovery finds,
without changing anything in the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def checkout_status() -> set[str] | None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


def test_new_then_its_own_test_passes_then_list_shows_it(tmp_path: Path) -> None:
    before = checkout_status()
    dest = tmp_path / "plugins"
    dest.mkdir()
    env = {
        **os.environ,
        "SOCFLOW_WORKFLOWS__PATHS": json.dumps([str(dest)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
        )

    new = run("-m", "socflow", "workflow", "new", "demo_flow", "--dest", str(dest))
    assert new.returncode == 0, new.stderr
    package = dest / "demo_flow"
    assert (package / "__init__.py").is_file() and (package / "tests" / "test_demo_flow.py").is_file()

    tests = run("-m", "pytest", str(package), "-q", "-p", "no:cacheprovider", "-W", "error")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    listed = run("-m", "socflow", "workflow", "list")
    assert listed.returncode == 0, listed.stderr
    assert "demo_flow" in listed.stdout and "alert_triage" in listed.stdout
    assert "skipped" not in listed.stderr

    graph = run("-m", "socflow", "workflow", "graph", "demo_flow")
    assert graph.returncode == 0 and "await_approval" in graph.stdout

    assert not (REPO / "demo_flow").exists() and not (REPO / "workflows" / "demo_flow").exists()
    after = checkout_status()
    if before is not None and after is not None:
        assert not [line for line in after - before if "demo_flow" in line]
