"""Shared measurement for the batching benchmark and the GPU check: N structured requests, sequential
(one at a time through ``model.generate``) vs concurrent (N threads sharing a ``batching=True`` client).

Prints wall time, requests/s, completion tokens/s and peak memory for each mode and the throughput ratio
(concurrent / sequential), and whether the two modes gave the same outputs (they should: greedy decoding).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from socflow.model.base import Message
from socflow.model.recorder import CallRecord

ALERTS = [
    "5 failed logons for alice on WS123 then LSASS access by procdump.exe",
    "powershell.exe -enc JABzAD0ATgBlAHcA on WS7 launched by winword.exe",
    "scheduled backup by svc_backup touched 10000 files on FS01 in 2 minutes",
    "new service installed on DC01: PSEXESVC from 10.0.0.5",
    "rundll32.exe loaded comsvcs.dll MiniDump against lsass on WS9",
    "VPN logon for bob from a new country 5 minutes after a logon from the office",
    "cmd /c whoami /all run by an Office macro on WS12",
    "certutil -urlcache -f downloaded a file to C:\\Users\\Public on WS3",
]


class Host(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9]{0,8}$")
    risk: int = Field(ge=0, le=9)


class Triage(BaseModel):
    verdict: Literal["benign", "malicious", "needs_review"]
    summary: str = Field(pattern=r"^[ -~]{0,48}$")
    severity: int = Field(ge=0, le=10)
    hosts: list[Host] = Field(max_length=2)


def messages(alert: str) -> list[Message]:
    return [
        Message(role="system", content="You are a SOC triage assistant. Reply with JSON only."),
        Message(role="user", content=f"Triage this alert: {alert}"),
    ]


class _Counting:
    """A stand-in recorder that keeps the CallRecords in memory (token counts) instead of writing rows."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self._lock = threading.Lock()

    def record(self, rec: CallRecord) -> int:
        with self._lock:
            self.records.append(rec)
            return len(self.records)


@dataclass
class Phase:
    name: str
    seconds: float
    completion_tokens: int
    requests: int
    peak_bytes: int
    outputs: list[Any] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.seconds:8.2f} s  {self.requests / self.seconds:7.2f} req/s  "
            f"{self.tokens_per_s:9.1f} tok/s  {self.completion_tokens:6d} tokens "
            f"({self.prompt_tokens} prompt)  "
            f"peak {self.peak_bytes / 2**30:7.2f} GiB"
        )


def _peak(device: str) -> int:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    # CPU: the process's peak resident set (it never goes down: read it as "at most").
    factor = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * factor


def _reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def compare(make_client: Any, *, n: int = 8, device: str = "cpu", schema: type[BaseModel] = Triage) -> dict:
    """Run the two modes on ``n`` prompts; ``make_client(batching: bool, recorder)`` builds a client."""
    prompts = [
        messages(ALERTS[i % len(ALERTS)] + (f" (case {i})" if i >= len(ALERTS) else "")) for i in range(n)
    ]

    seq_rec, conc_rec = _Counting(), _Counting()
    alone = make_client(False, seq_rec)
    batched = make_client(True, conc_rec)
    # Warm-up: load, compile the grammar, first kernels. Not measured.
    alone.generate_structured(prompts[0], schema)
    batched.generate_structured(prompts[0], schema)
    seq_rec.records.clear()
    conc_rec.records.clear()
    engine = batched.batcher()
    from socflow.model.batching import BatchStats

    engine.stats = BatchStats()

    def structured(client: Any, msgs: list[Message]) -> Any:
        try:
            return client.generate_structured(msgs, schema).model_dump()
        except Exception as exc:  # a StructuredOutputError is an answer too: the same in both modes
            return f"{type(exc).__name__}"

    _reset_peak(device)
    start = time.perf_counter()
    seq_out = [structured(alone, p) for p in prompts]
    seq = Phase(
        "sequential (one at a time)",
        time.perf_counter() - start,
        sum(r.completion_tokens for r in seq_rec.records),
        n,
        _peak(device),
        seq_out,
        sum(r.prompt_tokens for r in seq_rec.records),
    )

    _reset_peak(device)
    barrier = threading.Barrier(n)

    def concurrent_call(msgs: list[Message]) -> Any:
        barrier.wait()
        return structured(batched, msgs)

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        conc_out = list(pool.map(concurrent_call, prompts))
    conc = Phase(
        f"concurrent ({n} threads, batched)",
        time.perf_counter() - start,
        sum(r.completion_tokens for r in conc_rec.records),
        n,
        _peak(device),
        conc_out,
        sum(r.prompt_tokens for r in conc_rec.records),
    )
    batched.close()

    ratio = seq.seconds / conc.seconds
    print(seq.line())
    print(conc.line())
    stats = engine.stats
    print(
        f"batches run: {stats.sizes}; {stats.decode_steps} forward passes; rows that had finished but rode "
        f"along: {1 - stats.tokens / max(stats.row_steps, 1):.0%} of the row-steps"
    )
    lengths = sorted(len(str(o)) for o in conc_out)
    print(f"answer lengths (characters): {lengths}")
    print(f"same outputs in both modes: {seq_out == conc_out}")
    print(f"throughput ratio (concurrent / sequential): {ratio:.2f}x")
    return {
        "ratio": ratio,
        "sequential": seq,
        "concurrent": conc,
        "same_outputs": seq_out == conc_out,
        "batch_sizes": list(engine.stats.sizes),
        "forward_passes": engine.stats.decode_steps,
        "idle_row_share": round(1 - engine.stats.tokens / max(engine.stats.row_steps, 1), 3),
    }
