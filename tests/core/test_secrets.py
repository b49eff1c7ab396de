"""Secrets planted in every secret setting never appear in anything ``socflow`` prints or logs
(issue 17, defect 8: the production refusal printed the tail of the settings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from socflow.errors import ConfigError
from socflow.settings import Settings, get_settings

PLANTED = {
    "SOCFLOW_API__SECRET_KEY": "planted-api-secret-0001",
    "SOCFLOW_MODEL__ENDPOINT_API_KEY": "planted-endpoint-key-0002",
    "SOCFLOW_SIEM__PASSWORD": "planted-siem-password-0003",
    "SOCFLOW_CONNECTOR__PASSWORD": "planted-connector-password-0004",
    "SOCFLOW_CONNECTOR__API_KEY": "planted-connector-apikey-0005",
    "SOCFLOW_CONNECTOR__TOKEN": "planted-connector-token-0006",
    "SOCFLOW_BROKER__URL": "redis://:planted-broker-password-0007@127.0.0.1:1/0",
    "SOCFLOW_OIDC__CLIENT_SECRET": "planted-oidc-client-secret-0009",
}
DB_PASSWORD = "planted-db-password-0008"
SHORT = "pw-9x7q"  # short enough to show whole in a truncated repr of the settings' tail
SECRETS = [v for v in PLANTED.values() if not v.startswith("redis")] + [
    "planted-broker-password-0007",
    DB_PASSWORD,
    SHORT,
]


def _run(tmp_path: Path, args: list[str], **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SOCFLOW_")}
    full |= PLANTED | env
    out = subprocess.run(
        [sys.executable, "-m", "socflow", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=tmp_path,
        timeout=120,
    )
    return out.stdout + out.stderr


def _assert_clean(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"leaked {leaked} in:\n{text[-2000:]}"


@pytest.mark.parametrize("command", [["cases", "list"], ["serve"]])
def test_the_production_refusal_prints_no_secret(tmp_path: Path, command: list[str]) -> None:
    text = _run(
        tmp_path,
        command,
        SOCFLOW_ENV="production",
        SOCFLOW_API__SECRET_KEY="dev-insecure-change-me",
        SOCFLOW_DATABASE__URL=f"postgresql://socflow:{DB_PASSWORD}@127.0.0.1:5432/socflow",
        SOCFLOW_CONNECTOR__TOKEN=SHORT,
    )
    assert "SOCFLOW_API__SECRET_KEY" in text or "secret" in text.lower()
    _assert_clean(text)


def test_an_invalid_setting_prints_no_secret(tmp_path: Path) -> None:
    text = _run(
        tmp_path,
        ["cases", "list"],
        SOCFLOW_API__PORT="not-a-port",
        SOCFLOW_DATABASE__URL=f"postgresql://socflow:{DB_PASSWORD}@127.0.0.1:5432/socflow",
    )
    assert "SOCFLOW_API__PORT" in text
    _assert_clean(text)


def test_a_database_that_refuses_the_password_prints_no_secret(tmp_path: Path) -> None:
    text = _run(
        tmp_path,
        ["cases", "list"],
        SOCFLOW_DATABASE__URL=f"postgresql://socflow:{DB_PASSWORD}@127.0.0.1:5432/socflow_nope",
    )
    _assert_clean(text)


def test_an_ordinary_run_prints_and_logs_no_secret(tmp_path: Path) -> None:
    alerts = tmp_path / "a.ndjson"
    alerts.write_text('{"source":"s","source_ref":"1","title":"t","severity":"low"}\n{"bad":1}\n')
    db = f"sqlite:///{tmp_path / 'x.db'}"
    text = _run(tmp_path, ["db", "upgrade"], SOCFLOW_DATABASE__URL=db)
    text += _run(tmp_path, ["ingest", str(alerts)], SOCFLOW_DATABASE__URL=db)
    text += _run(tmp_path, ["deadletters", "list"], SOCFLOW_DATABASE__URL=db)
    assert "1 accepted" in text
    _assert_clean(text)


def test_reprs_and_errors_mask_every_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in PLANTED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", f"postgresql://socflow:{DB_PASSWORD}@h/db")
    settings = Settings()
    _assert_clean(repr(settings) + str(settings) + repr(settings.database) + repr(settings.broker))
    monkeypatch.setenv("SOCFLOW_ENV", "production")
    monkeypatch.setenv("SOCFLOW_API__SECRET_KEY", "")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    _assert_clean(str(caught.value))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
