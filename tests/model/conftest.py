"""Model-runtime fixtures: tiny random-weight Llamas built once per session (no download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

N_STRUCTURED_SEEDS = 20
N_CHOOSE_SEEDS = 50


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """50 tiny models that share one tokenizer and differ only in their weights' seed."""
    torch = pytest.importorskip("torch")
    from socflow.model.tiny import build_tiny_llama

    # Hidden size 64 gains nothing from threads, and on a shared 2-core runner they only contend.
    torch.set_num_threads(1)

    root = tmp_path_factory.mktemp("tiny-models")
    return [build_tiny_llama(root / f"seed{seed}", seed) for seed in range(N_CHOOSE_SEEDS)]


@pytest.fixture(scope="session")
def tiny_dir(tiny_dirs: list[Path]) -> Path:
    return tiny_dirs[0]


@pytest.fixture(scope="session")
def tiny_model(tiny_dir: Path) -> Any:
    """A loaded TransformersModel over the seed-0 tiny model (no recorder)."""
    from socflow.model.hf import TransformersModel

    model = TransformersModel(tiny_dir, device="cpu", max_new_tokens=16)
    model.load()
    return model


@pytest.fixture
def recorder(factory: Any) -> Iterator[Any]:
    from socflow.model.recorder import ModelCallRecorder

    yield ModelCallRecorder(factory)
