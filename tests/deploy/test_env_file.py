"""A ``.env`` shared with docker compose: its own names are ignored, unknown SOCFLOW_* names refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from socflow.settings import Settings, get_settings

COMPOSE_VARS = "POSTGRES_PASSWORD=pg-secret\nCPU_IMAGE=registry.local/socflow:1.2\nAPI_BIND=127.0.0.1\n"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("SOCFLOW_DATABASE__URL", "SOCFLOW_MODEL__BACKEND"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_compose_variables_in_env_are_ignored(in_tmp: Path) -> None:
    (in_tmp / ".env").write_text(COMPOSE_VARS + "SOCFLOW_MODEL__BACKEND=scripted\n")
    assert Settings().model.backend == "scripted"


def test_an_unknown_socflow_name_in_env_is_still_refused(in_tmp: Path) -> None:
    (in_tmp / ".env").write_text(COMPOSE_VARS + "SOCFLOW_MODLE__BACKEND=scripted\n")
    with pytest.raises(ValidationError, match="socflow_modle__backend"):
        Settings()


def test_socflow_commands_run_with_a_compose_env_file(in_tmp: Path, sqlite_url: str) -> None:
    from socflow.cli import app

    (in_tmp / ".env").write_text(COMPOSE_VARS + f"SOCFLOW_DATABASE__URL={sqlite_url}\n")
    for argv in (["cases", "list"], ["runs", "list"], ["workflow", "list"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
        assert "extra_forbidden" not in result.output
