"""Fixtures for the SIEM tool tests: paths into the shared log fixtures (read, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def logs_dir(shared_data: Path) -> Path:
    path = shared_data / "logs"
    if not (path / "sigma-regression").is_dir():
        pytest.fail(f"log fixtures not found under {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def regression_dir(logs_dir: Path) -> Path:
    return logs_dir / "sigma-regression"


@pytest.fixture(scope="session")
def sigma_dir(shared_data: Path) -> Path:
    return shared_data / "sigma"
