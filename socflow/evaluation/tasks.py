"""The evaluation task interface, the model/token plumbing every task shares, and the task registry.

A task is a function ``(EvalOptions) -> EvalReport``. Tasks that only need the platform live here
(``triage``, ``replay``); the ATT&CK tasks need the tools and live in ``tools/evaluation`` (reached
through ``socflow.wiring.eval_tasks()``, the composition root).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socflow.errors import InputError
from socflow.evaluation.report import EvalReport, ItemResult
from socflow.model.base import ModelClient
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.settings import ModelSettings


class CountingRecorder(ModelCallRecorder):
    """Counts calls and tokens; forwards each record to ``inner`` (a database recorder) when set."""

    def __init__(self, inner: ModelCallRecorder | None = None) -> None:
        self.inner = inner
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def record(self, rec: CallRecord) -> int:
        self.calls += 1
        self.prompt_tokens += rec.prompt_tokens
        self.completion_tokens += rec.completion_tokens
        return self.inner.record(rec) if self.inner is not None else 0

    def snapshot(self) -> tuple[int, int, int]:
        return self.calls, self.prompt_tokens, self.completion_tokens


@dataclass
class EvalOptions:
    """What a task gets: the dataset, the model (None: no model), filters, a work folder, progress hooks."""

    task: str
    dataset: Path
    workdir: Path
    model: ModelClient | None = None
    model_name: str = "none"
    limit: int | None = None
    include: tuple[str, ...] = ()
    labels: Path | None = None
    counter: CountingRecorder = field(default_factory=CountingRecorder)
    on_total: Callable[[int], None] = lambda total: None
    on_item: Callable[[], None] = lambda: None

    @contextmanager
    def measure(self, item: ItemResult) -> Iterator[ItemResult]:
        """Time, model calls and tokens spent inside the block are written onto ``item``."""
        calls, prompt, completion = self.counter.snapshot()
        started = time.perf_counter()
        try:
            yield item
        finally:
            item.seconds = round(time.perf_counter() - started, 4)
            now = self.counter.snapshot()
            item.model_calls = now[0] - calls
            item.prompt_tokens = now[1] - prompt
            item.completion_tokens = now[2] - completion
            self.on_item()


EvalTask = Callable[[EvalOptions], EvalReport]


def attach_counter(model: Any, counter: CountingRecorder) -> None:
    """Route a ready-made client's audit records through ``counter`` (keeping any recorder it had)."""
    if model is not None and hasattr(model, "recorder"):
        if counter.inner is None and isinstance(model.recorder, ModelCallRecorder):
            counter.inner = model.recorder
        model.recorder = counter


def model_settings(model: str, backend: str | None, base: ModelSettings) -> ModelSettings | None:
    """``none`` -> no model; ``smollm2`` -> the prepared demo model; else a local directory or GGUF file.

    ``backend`` defaults to ``transformers``; ``endpoint`` uses ``model`` as the served model's name and
    the configured endpoint URL.
    """
    if model == "none":
        return None
    backend = backend or "transformers"
    if backend == "transformers" and model != "smollm2" and not Path(model).expanduser().exists():
        raise InputError(f"--model {model}: no such local directory or GGUF file", field="model")
    if backend not in {"transformers", "endpoint"}:
        raise InputError(f"--backend {backend}: use transformers or endpoint", field="backend")
    return base.model_copy(update={"backend": backend, "name": model})
