"""The action catalog's typed targets and the three connectors, each against something real: a local
program run without a shell, a signed webhook receiver, and a Microsoft Defender for Endpoint test double
that checks the documented request shape."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from socflow.actions.catalog import (
    ActionId,
    Catalog,
    CommandConnectorConfig,
    DefenderConnectorConfig,
    TargetRefused,
    TargetType,
    WebhookConnectorConfig,
    validate_target,
)
from socflow.actions.connectors import (
    ActionRequest,
    CommandConnector,
    DefenderConnector,
    WebhookConnector,
)
from socflow.errors import ConfigError
from socflow.http import RemoteError
from tests.actions.helpers import SECRET, SECRET_ENV, http_receiver

HOSTILE = [
    "host; rm -rf /",
    "--help",
    "-rf",
    "$(id)",
    "`id`",
    "WS01 && id",
    "WS01\nid",
    "WS01|id",
    "../../etc/passwd",
    "",
    " WS01",
    "a" * 300,
]


def _request(action: ActionId, kind: TargetType, target: str) -> ActionRequest:
    return ActionRequest(
        delivery_id="d-1",
        case_id=7,
        action=action,
        target_type=kind,
        target=target,
        approved_by="alice",
        comment="socflow case 7: approved by alice",
    )


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("kind", [TargetType.hostname, TargetType.user, TargetType.ip, TargetType.domain])
def test_hostile_values_are_refused_by_every_type(kind: TargetType, value: str) -> None:
    with pytest.raises(TargetRefused):
        validate_target(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (TargetType.hostname, "WS-ACME-07"),
        (TargetType.hostname, "ws07.corp.example.com"),
        (TargetType.ip, "10.9.8.7"),
        (TargetType.ip, "2001:db8::1"),
        (TargetType.user, "jdoe"),
        (TargetType.user, "CORP\\jdoe"),
        (TargetType.user, "jdoe@corp.example"),
        (TargetType.hash, "d41d8cd98f00b204e9800998ecf8427e"),
        (TargetType.hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (TargetType.domain, "evil.example.net"),
    ],
)
def test_well_formed_values_pass(kind: TargetType, value: str) -> None:
    assert validate_target(kind, value) == value


@pytest.mark.parametrize("bad", ["999.1.1.1", "1.2.3.4; ls", "1.2.3.4 --x"])
def test_bad_ips_are_refused(bad: str) -> None:
    with pytest.raises(TargetRefused):
        validate_target(TargetType.ip, bad)


def _recorder_script(tmp_path: Path) -> tuple[list[str], Path]:
    out = tmp_path / "argv.json"
    script = tmp_path / "block.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "print('blocked', sys.argv[-1])\n",
        encoding="utf-8",
    )
    return [sys.executable, str(script)], out


def test_command_connector_passes_the_target_after_double_dash_without_a_shell(tmp_path: Path) -> None:
    argv, out = _recorder_script(tmp_path)
    conn = CommandConnector(CommandConnectorConfig(type="command", argv=argv))
    result = conn.execute(_request(ActionId.isolate_host, TargetType.hostname, "WS-ACME-07"))
    assert json.loads(out.read_text()) == ["--", "isolate_host", "WS-ACME-07"]
    assert "blocked WS-ACME-07" in result.summary


@pytest.mark.parametrize("value", ["host; rm -rf /", "--help", "$(touch /tmp/pwned)", "a b"])
def test_command_connector_refuses_hostile_targets_and_runs_nothing(tmp_path: Path, value: str) -> None:
    argv, out = _recorder_script(tmp_path)
    conn = CommandConnector(CommandConnectorConfig(type="command", argv=argv))
    with pytest.raises(TargetRefused):
        conn.execute(_request(ActionId.isolate_host, TargetType.hostname, value))
    assert not out.exists()  # the program never started


def test_command_connector_failure_is_a_remote_error(tmp_path: Path) -> None:
    conn = CommandConnector(
        CommandConnectorConfig(type="command", argv=[sys.executable, "-c", "raise SystemExit(3)"])
    )
    with pytest.raises(RemoteError, match="exited 3"):
        conn.execute(_request(ActionId.block_ip, TargetType.ip, "10.9.8.7"))


def test_webhook_connector_signs_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with http_receiver() as recv:
        conn = WebhookConnector(
            WebhookConnectorConfig(type="webhook", url=recv.url + "/h", secret_env=SECRET_ENV)
        )
        result = conn.execute(
            _request(ActionId.block_hash, TargetType.hash, "d41d8cd98f00b204e9800998ecf8427e")
        )
    (got,) = recv.requests
    assert got.signature_ok() and not got.signature_ok("another-secret")
    assert got.headers["x-socflow-delivery"] == "d-1"
    assert got.json()["target"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert result.reference == "ticket-4711"


def test_webhook_connector_without_its_secret_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    conn = WebhookConnector(
        WebhookConnectorConfig(type="webhook", url="http://127.0.0.1:9", secret_env=SECRET_ENV)
    )
    with pytest.raises(RemoteError, match="not set"):
        conn.execute(_request(ActionId.block_ip, TargetType.ip, "10.9.8.7"))


def test_defender_isolation_against_the_test_double(monkeypatch: pytest.MonkeyPatch) -> None:
    """DefenderTestDouble: a local HTTP server answering like the MDE API (machine lookup, isolate)."""
    monkeypatch.setenv("SOCFLOW_TEST_MDE_TOKEN", "mde-token-123")
    with http_receiver() as defender_test_double:
        defender_test_double.routes = {
            ("GET", "/api/machines?"): {"value": [{"id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"}]},
            ("POST", "/api/machines/"): {"id": "b89eb834-4578-496c-8be0-03f004061435", "status": "Pending"},
        }
        conn = DefenderConnector(
            DefenderConnectorConfig(
                type="defender", base_url=defender_test_double.url, token_env="SOCFLOW_TEST_MDE_TOKEN"
            )
        )
        result = conn.execute(_request(ActionId.isolate_host, TargetType.hostname, "WS-ACME-07"))
    lookup, isolate = defender_test_double.requests
    assert lookup.path.startswith("/api/machines?%24filter=computerDnsName+eq+%27WS-ACME-07%27")
    assert isolate.path == "/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/isolate"
    assert isolate.json() == {"Comment": "socflow case 7: approved by alice", "IsolationType": "Full"}
    assert isolate.headers["authorization"] == "Bearer mde-token-123"
    assert result.reference == "b89eb834-4578-496c-8be0-03f004061435"
    assert "Pending" in result.summary


def test_catalog_file_validation(tmp_path: Path) -> None:
    assert Catalog.load(None).enabled() == []
    bad = tmp_path / "a.yaml"
    bad.write_text("actions:\n  isolate_host: {connector: nowhere}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown connector"):
        Catalog.load(bad)
    bad.write_text(
        "connectors:\n  mde: {type: defender, token_env: MDE_TOKEN}\n"
        "actions:\n  block_ip: {connector: mde}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="defender connector runs only"):
        Catalog.load(bad)
    bad.write_text("actions:\n  launch_missiles: {connector: x}\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        Catalog.load(bad)
    good = tmp_path / "b.yaml"
    good.write_text(
        "connectors:\n  fw: {type: command, argv: [/usr/local/bin/block]}\n"
        "actions:\n  block_ip: {connector: fw}\n",
        encoding="utf-8",
    )
    catalog = Catalog.load(good)
    assert catalog.enabled() == [ActionId.block_ip] and not catalog.is_enabled("isolate_host")
