"""In-process batching: concurrent requests from several graph runs share forward passes.

A worker that runs several graph runs at once (a thread pool, or Celery's ``threads`` pool) shares one
``TransformersModel(batching=True)``; its calls hand their work to one ``BatchingEngine``, which owns the
loaded model and one worker thread::

    caller threads --submit--> queue --> engine thread: gather up to ``max_batch_size`` requests,
                                          waiting at most ``max_wait_ms`` after the first
                                     --> one prefill + one decode step per token for the whole batch
    caller threads <--Future-- results, row by row

Generation: prompts are left-padded; the attention mask marks the padding and the position ids are the
cumulative sum of the mask minus one (clamped at 0), so every row sees exactly the positions it would see
alone. Decoding is greedy with the repetition penalty applied per row over that row's real tokens only, and
constrained decoding keeps one xgrammar ``GrammarMatcher`` per row filling its row of a shared token
bitmask. A row stops at an end-of-sequence token or its own token budget; the batch ends when every row has.
Scoring: every label sequence of every request in the batch goes into one right-padded forward pass.

Greedy tokens equal the one-at-a-time ``model.generate`` path's, and scores match it to float rounding
(tests/model/test_batching.py). This is static batching: requests that arrive while a batch decodes wait for
the next one. Continuous batching (rows joining mid-decode, paged KV cache) is what vLLM is for; use the
``endpoint`` backend when that matters. Prefork workers cannot batch across processes: each child holds its
own model.

torch and xgrammar are imported inside the engine's methods only; the thread starts on the first request,
never at import or construction, so a process can still fork safely before first use.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, cast

from socflow.errors import ModelError

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_WAIT_MS = 20.0


@dataclass
class _Generate:
    prompt_ids: list[int]
    max_new_tokens: int
    grammar: Any
    future: Future[list[int]] = field(default_factory=Future)


@dataclass
class _Score:
    prompt_ids: list[int]
    label_ids: list[list[int]]
    future: Future[list[float]] = field(default_factory=Future)


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)
    decode_steps: int = 0  # forward passes of generation batches (prefill included)
    row_steps: int = 0  # rows x steps: the work done, finished rows still riding along included
    tokens: int = 0  # tokens the requests asked for and got


_STOP = object()


class BatchingEngine:
    """One worker thread that runs queued generate/score requests in shared forward passes."""

    def __init__(
        self,
        model: Any,
        *,
        device: str,
        eos_ids: Sequence[int],
        pad_id: int | None,
        repetition_penalty: float = 1.0,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.model = model
        self.device = device
        self.eos_ids = frozenset(int(e) for e in eos_ids)
        self.pad_id = int(pad_id) if pad_id is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.repetition_penalty = repetition_penalty
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    # -- public -------------------------------------------------------------------------------------------

    def generate(self, prompt_ids: Sequence[int], max_new_tokens: int, grammar: Any = None) -> list[int]:
        """Greedy new token ids after ``prompt_ids`` (the end-of-sequence token included when reached)."""
        if not prompt_ids:
            raise ModelError("empty prompt")
        return cast(list[int], self._submit(_Generate(list(prompt_ids), max_new_tokens, grammar)).result())

    def label_logprobs(self, prompt_ids: Sequence[int], label_ids: Sequence[Sequence[int]]) -> list[float]:
        """Mean log-probability of each label's tokens right after ``prompt_ids``."""
        if any(not ids for ids in label_ids):
            raise ModelError("a label tokenizes to nothing")
        request = _Score(list(prompt_ids), [list(ids) for ids in label_ids])
        return cast(list[float], self._submit(request).result())

    def close(self) -> None:
        """Stop the worker thread after the batch in flight; later requests raise ``ModelError``."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=60)

    # -- worker -------------------------------------------------------------------------------------------

    def _submit(self, request: Any) -> Any:
        with self._start_lock:
            if self._closed:
                raise ModelError("the batching engine is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="socflow-batching", daemon=True)
                self._thread.start()
            self._queue.put(request)
        return request.future

    def _gather(self, first: Any) -> list[Any]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._fail_pending()
                return
            batch = self._gather(first)
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            self.stats.sizes.append(len(batch))
            scores = [r for r in batch if isinstance(r, _Score)]
            gens = [r for r in batch if isinstance(r, _Generate)]
            if scores:
                self._guarded(self._run_scores, scores)
            if gens:
                self._guarded(self._run_generate, gens)

    @staticmethod
    def _guarded(run: Any, group: list[Any]) -> None:
        """Run one group; an exception goes to every caller in it whose answer is not yet set."""
        try:
            run(group)
        except BaseException as exc:
            for request in group:
                if not request.future.done():
                    request.future.set_exception(exc)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item.future.set_exception(ModelError("the batching engine is closed"))

    # -- scoring ------------------------------------------------------------------------------------------

    def _run_scores(self, requests: list[_Score]) -> None:
        import torch

        seqs = [r.prompt_ids + ids for r in requests for ids in r.label_ids]
        width = max(len(s) for s in seqs)
        input_ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in seqs], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits
            row = 0
            for request in requests:
                start = len(request.prompt_ids)
                means = []
                for ids in request.label_ids:
                    positions = torch.arange(start - 1, start - 1 + len(ids), device=self.device)
                    targets = torch.tensor(ids, device=self.device)
                    logprobs = torch.log_softmax(logits[row, positions].float(), dim=-1)
                    means.append(float(logprobs[torch.arange(len(ids), device=self.device), targets].mean()))
                    row += 1
                request.future.set_result(means)

    # -- generation ---------------------------------------------------------------------------------------

    def _run_generate(self, requests: list[_Generate]) -> None:
        import torch

        n = len(requests)
        dev = self.device
        lengths = [len(r.prompt_ids) for r in requests]
        width = max(lengths)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(requests):
            ids[i, width - lengths[i] :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - lengths[i] :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        # The repetition penalty sees each row's real tokens only: padding points at the row's first token.
        first = ids[torch.arange(n, device=dev), torch.tensor([width - k for k in lengths], device=dev)]
        seen = torch.where(mask.bool(), ids, first[:, None])

        matchers, bitmask = self._matchers(requests)
        out: list[list[int]] = [[] for _ in requests]
        done = [False] * n
        past: Any = None
        cache_arg = _cache_argument(self.model)
        # Only the last position's logits are needed: skip the vocabulary projection of the whole prompt.
        last_only = {"logits_to_keep": 1} if _accepts(self.model, "logits_to_keep") else {}
        step_ids, step_pos, attention = ids, position_ids, mask
        with torch.inference_mode():
            for _ in range(max(r.max_new_tokens for r in requests)):
                result = self.model(
                    input_ids=step_ids,
                    attention_mask=attention,
                    position_ids=step_pos,
                    use_cache=True,
                    **{cache_arg: past},
                    **last_only,
                )
                past = getattr(result, cache_arg)
                self.stats.decode_steps += 1
                self.stats.row_steps += n
                logits = result.logits[:, -1, :].to(dtype=torch.float32, copy=True)
                if self.repetition_penalty != 1.0:
                    picked = torch.gather(logits, 1, seen)
                    picked = torch.where(
                        picked < 0, picked * self.repetition_penalty, picked / self.repetition_penalty
                    )
                    logits.scatter_(1, seen, picked)
                if bitmask is not None:
                    self._mask(logits, matchers, bitmask, done)
                chosen = logits.argmax(dim=-1)
                tokens = chosen.tolist()
                for i, request in enumerate(requests):
                    if done[i]:
                        continue
                    token = int(tokens[i])
                    matcher = matchers[i]
                    constrained = matcher is not None and not matcher.is_terminated()
                    if constrained and not matcher.accept_token(token):
                        done[i] = True
                        request.future.set_exception(
                            ModelError(f"constrained decoding produced a rejected token {token}")
                        )
                        continue
                    out[i].append(token)
                    self.stats.tokens += 1
                    if token in self.eos_ids or len(out[i]) >= request.max_new_tokens:
                        done[i] = True
                        request.future.set_result(out[i])
                if all(done):
                    break
                step_ids = chosen[:, None]
                step_pos = step_pos[:, -1:] + 1
                attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=dev)], 1)
                seen = torch.cat([seen, step_ids], dim=1)
        for i, request in enumerate(requests):
            if not request.future.done():
                request.future.set_result(out[i])

    def _matchers(self, requests: list[_Generate]) -> tuple[list[Any], Any]:
        if all(r.grammar is None for r in requests):
            return [None] * len(requests), None
        import xgrammar as xgr

        matchers = [xgr.GrammarMatcher(r.grammar) if r.grammar is not None else None for r in requests]
        vocab = next(r.grammar for r in requests if r.grammar is not None).tokenizer_info.vocab_size
        return matchers, xgr.allocate_token_bitmask(len(requests), vocab)

    @staticmethod
    def _mask(logits: Any, matchers: list[Any], bitmask: Any, done: list[bool]) -> None:
        import xgrammar as xgr

        rows = []
        for i, matcher in enumerate(matchers):
            if matcher is not None and not done[i] and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(bitmask, i)
                rows.append(i)
        if rows:
            on_device = logits.device.type in ("cpu", "cuda")
            target = logits if on_device else logits.cpu()
            xgr.apply_token_bitmask_inplace(target, bitmask.to(target.device), indices=rows)
            if not on_device:
                logits.copy_(target)


def _accepts(model: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(model.forward).parameters


def _cache_argument(model: Any) -> str:
    """The forward argument (and output field) for the KV cache: ``cache`` in recent transformers 5
    releases, ``past_key_values`` before."""
    if _accepts(model, "cache") and not _accepts(model, "past_key_values"):
        return "cache"
    return "past_key_values"
