"""GPU check: the transformers backend, batched vs sequential, constrained decoding, on a Llama-3.1-8B shape.

Run through ``tests/benchmarks/gpu_check.sh`` (see it for the device machine and the wheels to carry).

Full mode (default): a random-weight ``LlamaForCausalLM`` with Foundation-Sec-8B-Instruct's shape (the
Llama-3.1-8B config: 32 layers, hidden 4096, 32 heads / 8 KV heads, MLP 14336, vocab 128256, llama3 RoPE)
in bf16 on CUDA, built in memory (no download, no disk). The tokenizer is socflow's tiny byte-level BPE
tokenizer (``socflow.model.tiny``): the grammar is compiled over the model's 128256-id vocabulary and masks
the ids the tokenizer lacks, so every request is schema-constrained JSON of realistic token counts. Random
weights decode nonsense, so the figures are speed and memory, not quality.

``--tiny``: the same code path on CPU with the 2-layer tiny Llama (seconds; run by
tests/model/test_gpu_check.py so that this script cannot rot).

Prints the sequential and batched wall time, tokens/s, peak memory and the ratio, and writes the same as
JSON to ``--json`` when given. Exit status 0 when the check ran (in ``--tiny``'s float32, only when
batched outputs equal sequential ones; bf16 may round differently per batch size), 1 when float32 outputs
differ, 2 when the machine cannot run the check (no CUDA, missing packages).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LLAMA_31_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": False,
    "hidden_act": "silu",
}


def _preflight(tiny: bool, device: str) -> str | None:
    missing = []
    for module in ("torch", "transformers", "xgrammar", "pydantic", "sqlalchemy", "tokenizers"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return f"missing Python packages: {', '.join(missing)} (carry them as wheels, see gpu_check.sh)"
    if not tiny and device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "CUDA is not available (full mode needs a GPU; --tiny runs on CPU)"
    return None


def build(tiny: bool, workdir: Path, *, device: str = "cuda", layers: int = 32) -> tuple[Any, Any, str]:
    """(model, tokenizer, description)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from socflow.model.tiny import build_tiny_llama, build_tiny_tokenizer

    if tiny:
        path = build_tiny_llama(workdir / "tiny", seed=0)
        model = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return model, tokenizer, "tiny random Llama (2 layers, hidden 64) on CPU in float32"

    tok_dir = build_tiny_tokenizer(workdir / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    eos, pad = int(tokenizer.eos_token_id), int(tokenizer.pad_token_id)
    shape = {**LLAMA_31_8B, "num_hidden_layers": layers}
    config = LlamaConfig(**shape, eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    n_params = sum(p.numel() for p in model.parameters())
    where = "CPU"
    if device == "cuda":
        torch.cuda.synchronize()
        where = torch.cuda.get_device_name()
    desc = (
        f"random Llama-3.1-8B shape, {layers} layers ({n_params / 1e9:.2f} B parameters) on {where} "
        f"in bf16, built in {time.perf_counter() - start:.1f} s"
    )
    return model, tokenizer, desc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (seconds), for the test")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    parser.add_argument("--layers", type=int, default=32, help="fewer layers: a dry run of the check itself")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a dry run")
    args = parser.parse_args(argv)

    problem = _preflight(args.tiny, args.device)
    if problem:
        print(f"gpu_check: cannot run: {problem}")
        return 2

    import torch

    from socflow.model.hf import TransformersModel
    from tests.benchmarks.batching_harness import compare

    if args.tiny:
        torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="socflow-gpu-check-") as tmp:
        model, tokenizer, desc = build(args.tiny, Path(tmp), device=args.device, layers=args.layers)
        device = "cpu" if args.tiny else args.device
        print(f"gpu_check: {desc}; torch {torch.__version__}")
        if device == "cuda":
            print(f"weights: {torch.cuda.memory_allocated() / 2**30:.2f} GiB allocated")

        def make(batching: bool, recorder: Any) -> Any:
            return TransformersModel.from_loaded(
                model,
                tokenizer,
                name="gpu-check-random-llama",
                recorder=recorder,
                batching=batching,
                batch_max_size=args.requests,
                max_new_tokens=64,
            )

        result = compare(make, n=args.requests, device=device)
    total = time.perf_counter() - started
    print(f"gpu_check: total {total:.1f} s")
    if args.json:
        seq, conc = result["sequential"], result["concurrent"]
        figures = {
            "model": desc,
            "requests": args.requests,
            "ratio": round(result["ratio"], 3),
            "same_outputs": result["same_outputs"],
            "batch_sizes": result["batch_sizes"],
            "forward_passes": result["forward_passes"],
            "idle_row_share": result["idle_row_share"],
            "total_seconds": round(total, 1),
            **{
                f"{name}_{key}": value
                for name, phase in (("sequential", seq), ("concurrent", conc))
                for key, value in (
                    ("seconds", round(phase.seconds, 3)),
                    ("tokens", phase.completion_tokens),
                    ("tokens_per_s", round(phase.tokens_per_s, 1)),
                    ("peak_gib", round(phase.peak_bytes / 2**30, 3)),
                )
            },
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if not result["same_outputs"] and device == "cuda":
        print("note: bf16 batched matmuls round differently from batch-1 ones; on random weights")
        print("      (near-uniform logits) greedy choices can then differ. float32 runs must match.")
    return 0 if result["same_outputs"] or device == "cuda" else 1


if __name__ == "__main__":
    sys.exit(main())
