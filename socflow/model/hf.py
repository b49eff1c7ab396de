"""The ``transformers`` backend: the model in-process, loaded once per process, lazily.

``name`` is a Hugging Face hub id, a local directory, a ``.gguf`` file, or ``smollm2`` (the bf16 copy of the
demo model prepared under the cache directory, prepared on first use). CUDA gets bf16; otherwise the CPU
in float32. Generation follows the vendor cookbooks: greedy, repetition penalty 1.2,
bounded new tokens. Structured output and ``choose`` use xgrammar constrained decoding (compact JSON, no free
whitespace) with the token budget computed from the bounded schema; ``score_labels`` is the perplexity
classifier (mean token log-likelihood of each label after the prompt, softmax-normalized).

``batching=True`` sends generation and scoring through one ``socflow.model.batching.BatchingEngine`` per
client, so threads that share the client (a worker running several graph runs at once) share forward passes;
outputs are the same as one at a time.

torch, transformers and xgrammar are imported inside the methods that need them, never at module import:
a process that loads torch before it forks deadlocks the child.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from socflow.errors import ModelError, ModelUnavailable
from socflow.model.base import Message
from socflow.model.driver import DrivenModel, softmax
from socflow.model.prepare import SMOLLM2_NAME, file_digest, prepare_smollm2, source_info
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.schema import BoundedSchema, choice_schema

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)

REPETITION_PENALTY = 1.2
MIN_ROOM_TOKENS = 16  # below this the prompt itself is too long
DEFAULT_CACHE_DIR = Path("~/.cache/socflow/models").expanduser()


class PromptTooLongError(ModelError):
    code = "prompt_too_long"


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: str
    revision: str | None
    context_length: int | None
    eos_ids: list[int]
    pad_id: int | None


def _is_hub_id(name: str) -> bool:
    return "/" in name and not Path(name).expanduser().exists() and not name.startswith((".", "/", "~"))


class TransformersModel(DrivenModel):
    """A ``ModelClient`` over a causal LM held in this process."""

    backend = "transformers"

    def __init__(
        self,
        name: str | Path,
        *,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        device: str = "auto",
        max_new_tokens: int = 256,
        load_in_4bit: bool = False,
        recorder: ModelCallRecorder | None = None,
        constrained: bool = True,
        repetition_penalty: float = REPETITION_PENALTY,
        batching: bool = False,
        batch_max_size: int = 8,
        batch_wait_ms: float = 20.0,
    ) -> None:
        super().__init__(
            str(name),
            recorder=recorder,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
        )
        self.cache_dir = Path(cache_dir).expanduser()
        self.device = device
        self.load_in_4bit = load_in_4bit
        self.constrained = constrained
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None
        self._compiler: Any = None
        self._grammars: dict[str, Any] = {}
        self.batching = batching
        self.batch_max_size = batch_max_size
        self.batch_wait_ms = batch_wait_ms
        self._engine: Any = None

    @classmethod
    def from_loaded(
        cls, model: Any, tokenizer: Any, *, name: str, revision: str | None = None, **kwargs: Any
    ) -> TransformersModel:
        """A client over a model and tokenizer already in memory (benchmarks, GPU checks); nothing loads."""
        client = cls(name, **kwargs)
        device = str(next(model.parameters()).device.type)
        gen = model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        pad: int | None = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else None
        if pad is None and eos_ids:
            pad = eos_ids[0]
        context = getattr(model.config, "max_position_embeddings", None)
        model.eval()
        client._loaded = _Loaded(model, tokenizer, device, revision, context, eos_ids, pad)
        return client

    def batcher(self) -> Any:
        """The ``BatchingEngine`` shared by this client's concurrent calls (made on first use)."""
        with self._lock:
            if self._engine is None:
                from socflow.model.batching import BatchingEngine

                loaded = self.load()
                self._engine = BatchingEngine(
                    loaded.model,
                    device=loaded.device,
                    eos_ids=loaded.eos_ids,
                    pad_id=loaded.pad_id,
                    repetition_penalty=self.repetition_penalty,
                    max_batch_size=self.batch_max_size,
                    max_wait_ms=self.batch_wait_ms,
                )
            return self._engine

    def close(self) -> None:
        """Stop the batching engine's thread, if one runs (the model stays loaded)."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    # -- loading -------------------------------------------------------------------------------------------

    def _resolve(self) -> tuple[str, str | None, str | None]:
        """(directory or hub id, gguf file name or None, revision or None)."""
        if self.name == SMOLLM2_NAME:
            directory = prepare_smollm2(self.cache_dir)
            prepared = source_info(directory) or {}
            return str(directory), None, prepared.get("digest")
        path = Path(self.name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelUnavailable(f"GGUF file not found: {path}")
            return str(path.parent), path.name, file_digest(path)
        if path.is_dir():
            info = source_info(path)
            if info and "digest" in info:
                return str(path), None, info["digest"]
            weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
            revision = ";".join(file_digest(w) for w in weights) if weights else None
            if revision and len(revision) > 200:
                import hashlib

                revision = "sha256-of-digests:" + hashlib.sha256(revision.encode()).hexdigest()
            return str(path), None, revision
        if _is_hub_id(self.name):
            return self.name, None, None
        raise ModelUnavailable(
            f"model not found: {self.name!r} is neither a directory, a .gguf file nor a hub id"
        )

    def load(self) -> _Loaded:
        """Load the model and tokenizer (once; later calls return the loaded pair)."""
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import torch
                import transformers
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise ModelUnavailable(
                    "the model extra is not installed: pip install 'socflow[model]'"
                ) from exc
            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
            source, gguf_file, revision = self._resolve()
            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cuda" and not torch.cuda.is_available():
                raise ModelUnavailable("device 'cuda' requested but CUDA is not available")
            kwargs: dict[str, Any] = {}
            if gguf_file:
                kwargs["gguf_file"] = gguf_file
            if self.load_in_4bit:
                try:
                    from transformers import BitsAndBytesConfig
                except ImportError as exc:  # pragma: no cover
                    raise ModelUnavailable("4-bit loading needs bitsandbytes") from exc
                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
                )
                kwargs["device_map"] = "auto"
            # bf16 on CUDA; float32 on CPU, where bf16 matmuls are slower on most CPUs.
            dtype: Any = torch.bfloat16 if device == "cuda" else torch.float32
            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    source, **({"gguf_file": gguf_file} if gguf_file else {})
                )
                model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"cannot load model {self.name!r}: {exc}") from exc
            if not self.load_in_4bit:
                model = model.to(device)
            model.eval()
            if revision is None:
                revision = getattr(model.config, "_commit_hash", None)
            gen = model.generation_config
            eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
            eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
            if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
                eos_ids.append(int(tokenizer.eos_token_id))
            pad: int | None = tokenizer.pad_token_id
            if pad is None and eos_ids:
                pad = eos_ids[0]
            context = getattr(model.config, "max_position_embeddings", None)
            self._loaded = _Loaded(model, tokenizer, device, revision, context, eos_ids, pad)
            log.info("model %s loaded on %s (revision %s)", self.name, device, revision)
            return self._loaded

    # -- helpers -----------------------------------------------------------------------------------------

    def _params(self, method: str) -> dict[str, Any]:
        if method == "score_labels":
            return {"score": "mean_token_logprob_softmax"}
        if method == "generate":
            return {"repetition_penalty": self.repetition_penalty}
        return {"constrained": self.constrained, "repetition_penalty": self.repetition_penalty}

    def _prepare(self, rec: CallRecord) -> None:
        rec.model_revision = self.load().revision

    def render(self, messages: Sequence[Message]) -> str:
        loaded = self.load()
        rendered = loaded.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def _context_length(self) -> int | None:
        return self.load().context_length

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Exact: the tokenizer over the chat-templated prompt."""
        ids = self.load().tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        return len(ids)

    def _check_length(self, n_prompt: int, n_new: int) -> None:
        context = self.load().context_length
        if context is not None and n_prompt + n_new > context:
            raise PromptTooLongError(
                f"prompt of {n_prompt} tokens plus {n_new} new tokens exceeds the model's context "
                f"of {context}"
            )

    def _fit_budget(self, n_prompt: int, max_new: int, rec: CallRecord) -> int:
        """``max_new`` clamped to the room the context leaves. A structured answer cut short fails
        validation and takes the repair-then-typed-failure path instead of failing the run here."""
        context = self.load().context_length
        if context is None or n_prompt + max_new <= context:
            return max_new
        room = context - n_prompt
        if room < MIN_ROOM_TOKENS:
            self._check_length(n_prompt, max_new)
        rec.parameters["max_new_tokens_clamped"] = room
        return room

    def _generate_ids(self, prompt: str, max_new: int, grammar: Any | None, rec: CallRecord) -> str:
        """Greedy generation from a rendered prompt; adds the prompt and completion tokens to ``rec``."""
        import torch
        from transformers import GenerationConfig

        loaded = self.load()
        enc = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        n_prompt = int(enc["input_ids"].shape[1])
        rec.prompt_tokens += n_prompt
        max_new = self._fit_budget(n_prompt, max_new, rec)
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=False,
            repetition_penalty=self.repetition_penalty,
            eos_token_id=loaded.eos_ids,
            pad_token_id=loaded.pad_id,
        )
        if self.batching:
            new = self.batcher().generate(enc["input_ids"][0].tolist(), max_new, grammar)
        else:
            processors = [_grammar_processor(grammar)] if grammar is not None else []
            with self._lock, torch.inference_mode():
                out = loaded.model.generate(
                    input_ids=enc["input_ids"].to(loaded.device),
                    attention_mask=enc["attention_mask"].to(loaded.device),
                    generation_config=config,
                    logits_processor=processors,
                )
            new = out[0][n_prompt:].tolist()
        rec.completion_tokens += len(new)
        n_new = len(new)
        while n_new and int(new[n_new - 1]) in loaded.eos_ids:
            n_new -= 1
        return str(loaded.tokenizer.decode(new[:n_new], skip_special_tokens=True))

    def _grammar(self, bounded: BoundedSchema) -> Any:
        key = bounded.schema_json
        with self._lock:
            if key not in self._grammars:
                import xgrammar as xgr

                loaded = self.load()
                if self._compiler is None:
                    info = xgr.TokenizerInfo.from_huggingface(
                        loaded.tokenizer,
                        vocab_size=int(loaded.model.config.vocab_size),
                        stop_token_ids=loaded.eos_ids,
                    )
                    self._compiler = xgr.GrammarCompiler(info)
                self._grammars[key] = self._compiler.compile_json_schema(
                    key, any_whitespace=False, separators=(",", ":"), strict_mode=True
                )
            return self._grammars[key]

    def _decoder(self, bounded: BoundedSchema, rec: CallRecord) -> Callable[[Sequence[Message]], str]:
        """One attempt: the chat template, then (grammar-constrained) greedy generation within the budget."""

        def attempt(msgs: Sequence[Message]) -> str:
            grammar = self._grammar(bounded) if self.constrained else None
            return self._generate_ids(self.render(msgs), bounded.token_budget, grammar, rec)

        return attempt

    # -- DrivenModel hooks (the ModelClient methods are socflow.model.driver.DrivenModel's) ---------------

    def _complete(self, messages: Sequence[Message], max_new: int, rec: CallRecord) -> str:
        return self._generate_ids(rec.prompt, max_new, None, rec)

    def _structured_attempt(
        self, schema: type[BaseModel], bounded: BoundedSchema, rec: CallRecord
    ) -> Callable[[Sequence[Message]], str]:
        return self._decoder(bounded, rec)

    def _choice_attempt(self, messages: Sequence[Message], options: tuple[str, ...], rec: CallRecord) -> str:
        bounded = choice_schema(options)
        rec.parameters["max_new_tokens"] = bounded.token_budget
        return self._decoder(bounded, rec)(messages)

    def _scores(
        self, prompt: str | Sequence[Message], labels: tuple[str, ...], rec: CallRecord
    ) -> dict[str, float]:
        loaded = self.load()
        if isinstance(prompt, str):
            prompt_ids = list(loaded.tokenizer(prompt)["input_ids"])
        else:
            prompt_ids = list(loaded.tokenizer(rec.prompt, add_special_tokens=False)["input_ids"])
        rec.prompt_tokens = len(prompt_ids)
        label_ids = [list(loaded.tokenizer(lab, add_special_tokens=False)["input_ids"]) for lab in labels]
        self._check_length(len(prompt_ids), max(len(ids) for ids in label_ids))
        means = self._label_logprobs(prompt_ids, label_ids)
        rec.completion_tokens = sum(len(ids) for ids in label_ids)
        rec.raw_output = json.dumps({lab: m for lab, m in zip(labels, means, strict=True)})
        return softmax(labels, means)

    def _label_logprobs(self, prompt_ids: list[int], label_ids: list[list[int]]) -> list[float]:
        """Mean log-probability of each label's tokens after the prompt (one padded batch)."""
        import torch

        loaded = self.load()
        if any(not ids for ids in label_ids):
            raise ModelError("a label tokenizes to nothing")
        if self.batching:
            return list(self.batcher().label_logprobs(prompt_ids, label_ids))
        seqs = [prompt_ids + ids for ids in label_ids]
        width = max(len(s) for s in seqs)
        pad = loaded.pad_id if loaded.pad_id is not None else 0
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=loaded.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=loaded.device)
        with self._lock, torch.inference_mode():
            logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        start = len(prompt_ids)
        means = []
        for row, ids in enumerate(label_ids):
            positions = torch.arange(start - 1, start - 1 + len(ids), device=loaded.device)
            targets = torch.tensor(ids, device=loaded.device)
            means.append(float(logprobs[row, positions, targets].mean()))
        return means

    # -- LangChain ----------------------------------------------------------------------------------------

    def as_langchain(self, *, max_new_tokens: int | None = None) -> Any:
        """A LangChain chat model (langchain-huggingface ``ChatHuggingFace``) over the same loaded model.

        That path supports ``invoke`` and ``stream`` only (no tools, no structured output, no ``ainvoke``);
        graphs call ``generate_structured``/``choose`` on this client for decisions.
        """
        from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
        from transformers import pipeline

        loaded = self.load()
        pipe = pipeline(
            "text-generation",
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            return_full_text=False,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            do_sample=False,
            repetition_penalty=self.repetition_penalty,
        )
        llm = HuggingFacePipeline(pipeline=pipe, model_id=self.name)
        return ChatHuggingFace(llm=llm, tokenizer=loaded.tokenizer, model_id=self.name)


_PROCESSOR_CLASS: Any = None


def _grammar_processor(compiled: Any) -> Any:
    """An xgrammar-masking ``LogitsProcessor`` (class built lazily: transformers is imported only here)."""
    global _PROCESSOR_CLASS
    if _PROCESSOR_CLASS is None:
        import transformers
        import xgrammar as xgr

        class GrammarLogitsProcessor(transformers.LogitsProcessor):  # type: ignore[misc]
            def __init__(self, grammar: Any) -> None:
                self.matcher = xgr.GrammarMatcher(grammar)
                self.bitmask = xgr.allocate_token_bitmask(1, grammar.tokenizer_info.vocab_size)
                self.started = False

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if input_ids.shape[0] != 1:
                    raise ModelError("grammar-constrained generation runs one sequence at a time")
                if self.started and not self.matcher.is_terminated():
                    token = int(input_ids[0, -1])
                    if not self.matcher.accept_token(token):
                        raise ModelError(f"constrained decoding produced a rejected token {token}")
                self.started = True
                if not self.matcher.is_terminated():
                    self.matcher.fill_next_token_bitmask(self.bitmask, 0)
                device = scores.device
                cpu_scores = scores if device.type in ("cpu", "cuda") else scores.to("cpu")
                xgr.apply_token_bitmask_inplace(cpu_scores, self.bitmask.to(cpu_scores.device))
                return cpu_scores.to(device)

        _PROCESSOR_CLASS = GrammarLogitsProcessor
    return _PROCESSOR_CLASS(compiled)
