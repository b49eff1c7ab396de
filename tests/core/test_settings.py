from pathlib import Path

import pytest

from socflow.errors import ConfigError
from socflow.settings import Settings, get_settings


def test_embedded_defaults_need_no_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.database.url == "sqlite:///./socflow.db"
    assert s.broker.url == ""
    assert s.siem.backend == "embedded"
    assert s.worker.model_queue == "gpu"


def test_nested_env_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", "postgresql://x@h/db")
    monkeypatch.setenv("SOCFLOW_GROUPING__WINDOW_SECONDS", "600")
    monkeypatch.setenv("SOCFLOW_GROUPING__KEY_FIELDS", '["rule","hosts"]')
    monkeypatch.setenv("SOCFLOW_WORKER__RUN_LEASE_SECONDS", "3")
    s = Settings()
    assert s.database.url == "postgresql://x@h/db"
    assert s.grouping.window_seconds == 600
    assert s.grouping.key_fields == ["rule", "hosts"]
    assert s.worker.run_lease_seconds == 3


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SOCFLOW_MODEL__BACKEND=scripted\n")
    assert Settings().model.backend == "scripted"


def test_production_refuses_default_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOCFLOW_ENV", "production")
    with pytest.raises(ConfigError):
        get_settings()
    monkeypatch.setenv("SOCFLOW_API__SECRET_KEY", "a-real-secret-value")
    get_settings.cache_clear()
    assert get_settings().api.secret_key.get_secret_value() == "a-real-secret-value"


def test_unknown_setting_names_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SOCFLOW_DATABASE__URLL=sqlite://\n")
    with pytest.raises(ValueError):
        Settings()
