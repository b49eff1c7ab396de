"""docker-compose.yml checked against the code (scripts/compose_check.sh runs it for real): every
``socflow`` command resolves in the Typer app (its options parse, its ``--help`` exits 0), every
``SOCFLOW_*`` variable is a setting whose value the Settings model accepts, and the ports agree with the
settings' defaults and the URLs. A broken copy (a misspelled command, option or variable) fails."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from socflow.settings import Settings
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+]([^}]*))?\}")


class MissingVariable(ValueError):
    pass


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}``: the value from ``env``, else the default. Without ``env``, a required
    ``${VAR:?message}`` becomes a placeholder; with ``env``, a missing one raises like compose does."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2) or ""
        if env is not None and env.get(name):
            return env[name]
        if "?" in m.group(0):
            if env is not None:
                raise MissingVariable(f"{name}: {default}")
            return "placeholder-" + name.lower()
        return default

    return _INTERPOLATION.sub(sub, value).replace("$$", "$")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def command_problems(name: str, argv: list[str], cli: typer.Typer) -> list[str]:
    """``socflow ARGV --help`` in-process: a misspelled command or option exits 2, a good one 0."""
    result = CliRunner().invoke(cli, [*argv, "--help"])
    if result.exit_code != 0:
        lines = [ln.strip(" │╭╮╰╯─") for ln in result.output.splitlines()]
        reason = " ".join(ln for ln in lines if ln) or repr(result.exception)
        return [f"{name}: socflow {' '.join(argv)}: exit {result.exit_code}: {reason}"]
    return []


def setting_problems(name: str, env: dict[str, str]) -> list[str]:
    problems = []
    for var in env:
        if not var.startswith("SOCFLOW_"):
            continue
        parts = var.removeprefix("SOCFLOW_").lower().split("__")
        model: type[BaseModel] = Settings
        for part in parts:
            field = model.model_fields.get(part)
            if field is None:
                problems.append(f"{name}: {var} is not a setting")
                break
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
    if problems:
        return problems
    saved = {k: v for k, v in os.environ.items() if k.startswith("SOCFLOW_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update({k: v for k, v in env.items() if k.startswith("SOCFLOW_")})
        Settings(_env_file=None)  # type: ignore[call-arg]
    except ValueError as exc:
        problems.append(f"{name}: settings rejected: {exc}")
    finally:
        for k in [k for k in os.environ if k.startswith("SOCFLOW_")]:
            del os.environ[k]
        os.environ.update(saved)
    return problems


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(interpolate(str(p)).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def compose_problems(doc: dict[str, Any], cli: typer.Typer) -> list[str]:
    problems: list[str] = []
    services: dict[str, dict[str, Any]] = doc["services"]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, svc in services.items():
        env = {k: interpolate(str(v)) for k, v in (svc.get("environment") or {}).items()}
        problems += setting_problems(name, env)
        argv = [interpolate(str(a)) for a in svc.get("command") or []]
        if argv[:1] == ["socflow"]:
            problems += command_problems(name, argv[1:], cli)
        for var, service_name, default_port in (
            ("SOCFLOW_DATABASE__URL", "postgres", 5432),
            ("SOCFLOW_BROKER__URL", "redis", 6379),
        ):
            if var in env:
                url = make_url(env[var])
                if url.host not in services:
                    problems.append(f"{name}: {var} names host {url.host!r}, not a service")
                elif (url.port or default_port) not in container_ports(services[url.host]) | {default_port}:
                    problems.append(f"{name}: {var} port {url.port} is not {service_name}'s")
        if "SOCFLOW_MODEL__ENDPOINT_URL" in env:
            url = urlparse(env["SOCFLOW_MODEL__ENDPOINT_URL"])
            target = services.get(url.hostname or "")
            served = option([str(a) for a in (target or {}).get("command", [])], "--port")
            if target is None or served != str(url.port):
                problems.append(f"{name}: the model endpoint {url.geturl()} is not a service's --port")
        if argv[:2] == ["socflow", "serve"]:
            port = int(option(argv, "--port") or defaults.api.port)
            if port != defaults.api.port or port not in container_ports(svc):
                problems.append(
                    f"{name}: serves on {port}; the settings' default is {defaults.api.port}, "
                    f"ports {svc.get('ports')}"
                )
    if "ports" in services.get("postgres", {}) and 5432 not in container_ports(services["postgres"]):
        problems.append("postgres: container port is not 5432")
    if "ports" in services.get("redis", {}) and 6379 not in container_ports(services["redis"]):
        problems.append("redis: container port is not 6379")
    return problems


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    from socflow.cli import app

    return app


def test_compose_file_matches_the_cli_settings_and_ports(cli: typer.Typer) -> None:
    doc = load()
    assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu", "vllm"} <= set(doc["services"])
    gpu = doc["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert all("healthcheck" in doc["services"][s] for s in ("postgres", "redis", "api", "vllm"))
    assert compose_problems(doc, cli) == []


def _broken(
    doc: dict[str, Any],
    service: str,
    *,
    command: tuple[int, str] | None = None,
    env: tuple[str, str] | None = None,
) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    svc = doc["services"][service]
    if command is not None:
        svc["command"] = list(svc["command"])
        svc["command"][command[0]] = command[1]
    if env is not None:
        svc["environment"] = dict(svc["environment"])
        value = svc["environment"].pop(env[0])
        svc["environment"][env[1]] = value
    return doc


@pytest.mark.parametrize(
    ("service", "change", "expected"),
    [
        ("worker-cpu", {"command": (1, "wroker")}, "No such command 'wroker'"),
        ("worker-cpu", {"command": (2, "--queue")}, "No such option"),
        ("api", {"command": (1, "serv")}, "No such command 'serv'"),
        ("sweeper", {"command": (2, "--intervall")}, "No such option"),
        ("migrate", {"command": (2, "upgrad")}, "No such command 'upgrad'"),
        (
            "api",
            {"env": ("SOCFLOW_BROKER__URL", "SOCFLOW_BROKER__ULR")},
            "SOCFLOW_BROKER__ULR is not a setting",
        ),
        ("worker-gpu", {"env": ("SOCFLOW_MODEL__DEVICE", "SOCFLOW_MODLE__DEVICE")}, "is not a setting"),
    ],
)
def test_a_misspelled_copy_fails(
    cli: typer.Typer, service: str, change: dict[str, Any], expected: str
) -> None:
    problems = compose_problems(_broken(load(), service, **change), cli)
    assert any(expected in p for p in problems), problems


def test_a_bad_value_or_port_fails(cli: typer.Typer) -> None:
    doc = copy.deepcopy(load())
    doc["services"]["worker-gpu"]["environment"]["SOCFLOW_MODEL__DEVICE"] = "tpu"
    doc["services"]["api"]["command"][doc["services"]["api"]["command"].index("--port") + 1] = "8080"
    doc["services"]["worker-cpu"]["environment"]["SOCFLOW_BROKER__URL"] = "redis://redis:6380/0"
    problems = compose_problems(doc, cli)
    assert any("worker-gpu: settings rejected" in p for p in problems), problems
    assert any("api: serves on 8080" in p for p in problems), problems
    assert any("worker-cpu: SOCFLOW_BROKER__URL port 6380" in p for p in problems), problems
