"""``socflow bench``: speed and cost, measured side by side in one run on this machine.

1. Orchestration overhead per alert: ingest -> queued alert_triage run -> runner (SQLite checkpointer,
   leases, audit) -> persisted case at the approval interrupt, with an instant scripted model; against the
   same graph invoked bare (cases created beforehand, LangGraph's ``InMemorySaver``, no runner). The nodes do
   the same database work in both, so the difference is what the platform adds.
2. Storage: database bytes per alert once its run completed (one case per alert, approved), no
   ``db prune``: completed runs keep one checkpoint.
3. Storm economy: N alerts from 20 incidents through storm grouping, runs advanced after every chunk of 1,000:
   runs and model calls per alert, database bytes per alert.
4. Model batching: 8 short generations on the tiny random Llama, sequential vs concurrent with batching.
5. SIEM ingest and query throughput on generated events (``wiring.siem_throughput``).
6. API ingest (``socflow.evaluation.bench_ingest``): NDJSON alerts each opening a case, and a storm from 20
   incidents, on SQLite and PostgreSQL, each against a raw ``executemany`` of the same rows.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import func, select, text

from socflow import __version__, migrate, wiring
from socflow.decisions import submit_decision
from socflow.evaluation.bench_ingest import ingest_figures
from socflow.evaluation.tasks import CountingRecorder
from socflow.grouping import OneCasePerAlert
from socflow.hitl import Action, Decision
from socflow.ingest import IngestService
from socflow.model.base import Message
from socflow.model.hf import TransformersModel
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.model.tiny import build_tiny_llama
from socflow.schemas import now_utc
from socflow.sdk import RunContext
from socflow.settings import Settings
from socflow.tables import ModelCall, WorkflowRun

WORKFLOW = "alert_triage"
INCIDENTS = 20
CHUNK = 1000


@dataclass
class BenchResults:
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"machine": self.machine, "figures": self.figures}, indent=2) + "\n"


def instant_model() -> ScriptedModel:
    """Answers every alert_triage call at once: first candidate, a true positive, a cited note."""
    note = {
        "summary": ["Encoded PowerShell ran on the host [E1]."],
        "impacted": ["The host and its user [E1]."],
        "timeline": ["The alert fired [E1]."],
        "next_steps": ["Review the command line."],
    }
    return ScriptedModel(
        [
            ScriptRule(lambda m, method, options: str(options[0]), node="map_attack", method="choose"),
            ScriptRule(
                {"verdict": "true_positive", "priority": "high", "rationale": "bench", "evidence": ["E1"]},
                node="assess_case",
                method="generate_structured",
            ),
            ScriptRule(
                {"true_positive": 0.8, "benign_positive": 0.1, "false_positive": 0.1},
                node="assess_case",
                method="score_labels",
            ),
            ScriptRule(note, node="draft_note", method="generate_structured"),
        ],
        model_id="instant-scripted",
    )


def bench_alert(i: int, *, incident: int | None = None, start: Any = None) -> dict[str, Any]:
    key = incident if incident is not None else i
    when = (start or now_utc()) + timedelta(seconds=i % 600)
    return {
        "source": "bench",
        "source_ref": f"bench-{i}",
        "title": f"Encoded PowerShell (incident {key})",
        "severity": "high",
        "timestamp": when.isoformat(),
        "description": "powershell.exe -enc JABzAD0ATgBlAHcA launched by winword.exe",
        "rule": {"id": f"rule-{key % 7}", "name": "Encoded PowerShell", "tags": ["attack.t1059.001"]},
        "entities": {"hosts": [f"WS{key:03d}"], "users": [f"user{key:03d}"], "processes": ["powershell.exe"]},
    }


class Platform:
    """A migrated SQLite database in ``workdir`` with the runner and ingest wired as in production."""

    def __init__(self, workdir: Path, name: str, *, grouped: bool) -> None:
        self.path = workdir / f"{name}.db"
        self.url = f"sqlite:///{self.path}"
        migrate.upgrade(self.url)
        self.settings = Settings(
            database={"url": self.url}, siem={"path": workdir / "no-siem.db"}, model={"backend": "none"}
        )
        self.services = wiring.build_services(
            self.settings, model=instant_model().with_recorder, siem=None, dispatcher="null"
        )
        self.factory = self.services.factory
        self.registry = self.services.registry
        self.runner = self.services.runner
        options = wiring.ingest_options(self.settings, self.registry)
        if not grouped:
            options["grouper"] = OneCasePerAlert()
        self.service = IngestService(self.factory, **options)

    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def count(self, table: Any) -> int:
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)


def overhead(workdir: Path, n: int) -> dict[str, Any]:
    full = Platform(workdir, "overhead-full", grouped=False)
    full.runner.advance(full.service.ingest_text(json.dumps(bench_alert(-1)), actor="bench").runs_queued[0])
    started = time.perf_counter()
    for i in range(n):
        for run_id in full.service.ingest_text(json.dumps(bench_alert(i)), actor="bench").runs_queued:
            full.runner.advance(run_id)
    full_s = (time.perf_counter() - started) / n

    bare = Platform(workdir, "overhead-bare", grouped=False)
    bare.service.queue = None  # cases only: no runs, the graph is invoked directly below
    cases = [
        bare.service.ingest_text(json.dumps(bench_alert(i)), actor="bench").items[0].case_id
        for i in range(-1, n)
    ]
    spec = bare.registry.get(WORKFLOW)
    graph = spec.build().compile(checkpointer=InMemorySaver())

    def invoke(i: int, case_id: int | None) -> None:
        ctx = RunContext(run_id=f"bare-{i}", case_id=case_id, deps=bare.services.deps)
        graph.invoke(
            spec.initial_state(case_id, {}), {"configurable": {"thread_id": f"bare-{i}"}}, context=ctx
        )

    invoke(-1, cases[0])
    started = time.perf_counter()
    for i, case_id in enumerate(cases[1:]):
        invoke(i, case_id)
    bare_s = (time.perf_counter() - started) / n
    return {
        "alerts": n,
        "platform_ms_per_alert": full_s * 1000,
        "bare_graph_ms_per_alert": bare_s * 1000,
        "overhead_ms_per_alert": (full_s - bare_s) * 1000,
        "ratio_platform_to_bare": full_s / bare_s if bare_s else 0.0,
    }


def storage(workdir: Path, n: int) -> dict[str, Any]:
    """Database bytes per alert once its run completed, no ``db prune``: n alerts each opening a case, each
    triaged to the approval interrupt and approved (every alert's raw payload, model call and audit event
    kept). SQLite file + WAL after a WAL checkpoint, measured as growth over the warmed-up database."""
    p = Platform(workdir, "storage", grouped=False)
    approve = Decision(action=Action.approve, user="bench")

    def triage(i: int) -> None:
        report = p.service.ingest_text(json.dumps(bench_alert(i)), actor="bench")
        case_id = report.items[0].case_id
        for run_id in report.runs_queued:
            p.runner.advance(run_id)
            if case_id is not None:
                submit_decision(p.runner, case_id, approve, run_id=run_id)

    def size() -> int:
        with sqlite3.connect(p.path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return p.bytes()

    triage(-1)
    before = size()
    for i in range(n):
        triage(i)
    grown = size() - before
    with p.factory() as session:
        completed = int(
            session.scalar(
                select(func.count()).select_from(WorkflowRun).where(WorkflowRun.status == "completed")
            )
            or 0
        )
        checkpoints = int(session.scalar(text("SELECT count(*) FROM checkpoints")) or 0)
    return {
        "alerts": n,
        "completed_runs": completed,
        "checkpoints_per_completed_run": checkpoints / completed if completed else 0.0,
        "db_bytes_per_alert_completed": grown / n,
        "model_calls_per_alert": p.count(ModelCall) / (n + 1),
    }


def storm(workdir: Path, n: int) -> dict[str, Any]:
    p = Platform(workdir, "storm", grouped=True)
    start = now_utc()
    started = time.perf_counter()
    ingest_s = 0.0
    for lo in range(0, n, CHUNK):
        lines = [
            json.dumps(bench_alert(i, incident=i % INCIDENTS, start=start))
            for i in range(lo, min(n, lo + CHUNK))
        ]
        t = time.perf_counter()
        report = p.service.ingest_text("\n".join(lines), actor="bench")
        ingest_s += time.perf_counter() - t
        for run_id in dict.fromkeys([*report.runs_queued, *p.runner.runnable(limit=1000)]):
            p.runner.advance(run_id)
    total_s = time.perf_counter() - started
    runs, calls = p.count(WorkflowRun), p.count(ModelCall)
    return {
        "alerts": n,
        "incidents": INCIDENTS,
        "runs": runs,
        "model_calls": calls,
        "runs_per_alert": runs / n,
        "model_calls_per_alert": calls / n,
        "db_bytes_per_alert": p.bytes() / n,
        "ingest_alerts_per_s": n / ingest_s if ingest_s else 0.0,
        "seconds": total_s,
    }


def batching(workdir: Path, requests: int = 8, max_new_tokens: int = 24) -> dict[str, Any]:
    """Sequential vs concurrent-batched generations on the tiny random Llama (CPU unless a GPU is free)."""
    directory = build_tiny_llama(workdir / "tiny-llama", seed=0)
    base = TransformersModel(str(directory), device="cpu")
    loaded = base.load()
    prompts: list[list[Message]] = [
        [{"role": "user", "content": f"Summarise alert {i}: 5 failed logons then LSASS access."}]
        for i in range(requests)
    ]

    counters = {False: CountingRecorder(), True: CountingRecorder()}

    def client(batched: bool) -> TransformersModel:
        return TransformersModel.from_loaded(
            loaded.model,
            loaded.tokenizer,
            name=str(directory),
            batching=batched,
            batch_max_size=requests,
            recorder=counters[batched],
        )

    seq = client(False)
    seq.generate(prompts[0], max_new_tokens=max_new_tokens)  # warm-up
    warm = counters[False].completion_tokens
    t = time.perf_counter()
    for msgs in prompts:
        seq.generate(msgs, max_new_tokens=max_new_tokens)
    seq_s = time.perf_counter() - t
    seq_tokens = counters[False].completion_tokens - warm
    batched = client(True)
    with ThreadPoolExecutor(requests) as pool:
        list(pool.map(lambda m: batched.generate(m, max_new_tokens=max_new_tokens), prompts))
        before = counters[True].completion_tokens
        t = time.perf_counter()
        list(pool.map(lambda m: batched.generate(m, max_new_tokens=max_new_tokens), prompts))
        conc_s = time.perf_counter() - t
    batched.close()
    conc_tokens = counters[True].completion_tokens - before
    return {
        "requests": requests,
        "max_new_tokens": max_new_tokens,
        "sequential_s": seq_s,
        "batched_s": conc_s,
        "sequential_tokens_per_s": seq_tokens / seq_s if seq_s else 0.0,
        "batched_tokens_per_s": conc_tokens / conc_s if conc_s else 0.0,
        "ratio_throughput_batched_to_sequential": (conc_tokens / conc_s) / (seq_tokens / seq_s)
        if conc_s and seq_s and seq_tokens
        else 0.0,
        "model": "tiny random Llama (2 layers, hidden 64), CPU",
    }


def machine() -> dict[str, Any]:
    return {
        "socflow": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "when": now_utc().isoformat(timespec="seconds"),
    }


def _lines(name: str, figures: dict[str, Any]) -> list[str]:
    return [
        f"{name}.{k}: {v:.3f}" if isinstance(v, float) else f"{name}.{k}: {v}" for k, v in figures.items()
    ]


def run_bench(
    workdir: Path,
    *,
    storm_alerts: int = 10_000,
    overhead_alerts: int = 50,
    siem_events: int = 100_000,
    batching_enabled: bool = True,
    say: Callable[[str], None] = print,
    ingest_alerts: int = 10_000,
    postgres_url: str | None = None,
) -> BenchResults:
    results = BenchResults(machine=machine())
    say(f"socflow bench on {results.machine['platform']} ({results.machine['cpus']} CPUs)")
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("overhead", lambda: overhead(workdir, overhead_alerts)),
        ("storage", lambda: storage(workdir, overhead_alerts)),
        ("storm", lambda: storm(workdir, storm_alerts)),
        ("siem", lambda: wiring.siem_throughput(workdir, siem_events)),
        ("ingest", lambda: ingest_figures(workdir, ingest_alerts, postgres_url)),
    ]
    if batching_enabled:
        steps.append(("batching", lambda: batching(workdir)))
    for name, step in steps:
        started = time.perf_counter()
        try:
            figures = step()
        except ImportError as exc:  # the model extra (torch) is not installed
            figures = {"skipped": f"{type(exc).__name__}: {exc}"}
        figures["bench_seconds"] = time.perf_counter() - started
        results.figures[name] = figures
        for line in _lines(name, figures):
            say(line)
    return results
