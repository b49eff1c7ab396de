"""docker-compose.yml's profiles, routing and defects, checked against the code with compose's interpolation.

The default profile runs on any machine; the gpu profile routes in-process runs to the ``gpu`` queue.
``scripts/compose_check.sh`` runs ``docker compose config`` on both profiles and the default one end to end.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from socflow.settings import Settings
from tests.conftest import REPO_ROOT
from tests.workers.test_compose import MissingVariable, interpolate, load
from workers.routing import queue_for

REQUIRED = {"POSTGRES_PASSWORD": "pg-secret-1", "SOCFLOW_API__SECRET_KEY": "k" * 40}
DEFAULT_SERVICES = {"postgres", "redis", "migrate", "api", "worker-cpu", "sweeper", "connector"}
GPU_ENV = {**REQUIRED, "MODEL_QUEUE": "gpu", "CPU_WORKER_QUEUES": "ingest,workflows"}


def services(profile: str | None = None) -> dict[str, dict[str, Any]]:
    """What ``docker compose [--profile P] config`` would start."""
    return {
        name: svc
        for name, svc in load()["services"].items()
        if not svc.get("profiles") or (profile is not None and profile in svc["profiles"])
    }


def env_of(svc: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in (svc.get("environment") or {}).items()}


def settings_of(svc: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for k in [k for k in os.environ if k.startswith("SOCFLOW_")]:
        monkeypatch.delenv(k)
    for k, v in env_of(svc, env).items():
        monkeypatch.setenv(k, v)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def queues_of(svc: dict[str, Any], env: dict[str, str]) -> set[str]:
    argv = [interpolate(str(a), env) for a in svc["command"]]
    return set(argv[argv.index("--queues") + 1].split(","))


def alert_triage_queue(settings: Settings) -> str:
    from socflow.wiring import build_registry

    return queue_for(build_registry(settings).get("alert_triage"), settings)


def test_the_default_profile_runs_on_any_machine() -> None:
    default = services()
    assert set(default) == DEFAULT_SERVICES
    for name, svc in default.items():
        assert "deploy" not in svc, f"{name} reserves devices"
        for dep in svc.get("depends_on") or {}:
            assert dep in default, f"{name} waits for {dep}, which the default profile does not start"
    assert load()["services"]["postgres"]["image"].endswith(":-postgres:16}")
    assert load()["services"]["redis"]["image"].endswith(":-redis:7}")


def test_the_gpu_profile_adds_vllm_and_a_cuda_worker() -> None:
    gpu = services("gpu")
    assert set(gpu) == DEFAULT_SERVICES | {"vllm", "worker-gpu"}
    build = gpu["worker-gpu"]["build"]["args"]
    assert "/whl/cu" in interpolate(build["TORCH_INDEX"], REQUIRED) and "+cpu" not in build["TORCH_SPEC"]
    assert interpolate(gpu["worker-gpu"]["image"]) != interpolate(gpu["worker-cpu"]["image"])
    assert "args" not in gpu["worker-cpu"]["build"]  # the Dockerfile's defaults: CPU torch and the demo model
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile


@pytest.mark.parametrize(
    ("env", "queue", "consumer"),
    [
        (REQUIRED, "cpu", "worker-cpu"),  # default: the demo model in-process on the CPU worker
        (GPU_ENV, "gpu", "worker-gpu"),  # gpu profile, in-process: the GPU worker
        ({**GPU_ENV, "MODEL_BACKEND": "endpoint"}, "workflows", "worker-cpu"),  # gpu profile with vLLM
    ],
    ids=["default", "gpu-in-process", "gpu-vllm"],
)
def test_runs_are_routed_to_a_worker_that_consumes_their_queue(
    env: dict[str, str], queue: str, consumer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = services("gpu")
    api = settings_of(profile["api"], env, monkeypatch)
    assert alert_triage_queue(api) == queue
    assert queue in queues_of(profile[consumer], env)
    others = {n for n, s in profile.items() if "--queues" in s.get("command", []) and n != consumer}
    assert all(queue not in queues_of(profile[n], env) for n in others), "two kinds of worker share a queue"
    worker = settings_of(profile[consumer], env, monkeypatch)
    assert worker.worker.model_queue == api.worker.model_queue
    if consumer == "worker-gpu":
        assert worker.model.backend == "transformers" and worker.model.device == "cuda"


def test_worker_health_checks_read_machine_readable_output() -> None:
    for name in ("worker-cpu", "worker-gpu"):
        test = " ".join(load()["services"][name]["healthcheck"]["test"])
        assert "inspect ping --json" in test and "worker status" not in test, name


def test_secrets_are_required_not_defaulted() -> None:
    doc = load()
    for name in ("postgres", "api"):
        svc = doc["services"][name]
        with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
            env_of(svc, {"SOCFLOW_API__SECRET_KEY": "k" * 40})
    with pytest.raises(MissingVariable, match="SOCFLOW_API__SECRET_KEY"):
        env_of(doc["services"]["api"], {"POSTGRES_PASSWORD": "x"})
    url = env_of(doc["services"]["api"], REQUIRED)["SOCFLOW_DATABASE__URL"]
    assert ":pg-secret-1@" in url


def test_the_api_is_published_on_loopback_only_by_default() -> None:
    ports = [interpolate(str(p)) for p in load()["services"]["api"]["ports"]]
    assert ports == ["127.0.0.1:8000:8000"]
    for name, svc in load()["services"].items():
        for p in svc.get("ports", []):
            assert interpolate(str(p)).startswith("127.0.0.1:"), f"{name} publishes {p} on every address"


def test_the_image_user_can_write_its_data_volume() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user and user.group(1) != "root"
    chown = re.search(r"chown (\S+):\S+ ([^\n\\]+)", dockerfile)
    assert chown and chown.group(1) == user.group(1) and "/data" in chown.group(2).split()
    assert dockerfile.index("chown") < dockerfile.index('VOLUME ["/data"]')
    assert {v.split(":")[1] for v in load()["services"]["api"]["volumes"]} == {"/data"}


def test_every_doc_the_compose_file_names_exists() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    named = set(re.findall(r"\b(docs/[\w.-]+\.(?:md|example))", text))
    assert named and all((REPO_ROOT / p).exists() for p in named), named
    assert not re.search(r"\$\{SOCFLOW_(?!API__SECRET_KEY)", text), "a compose variable named SOCFLOW_*"
