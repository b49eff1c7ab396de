"""Races and crashes: two analysts approving at once; a worker killed in the middle of a graph."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from socflow.runner import Runner, RunStatus
from socflow.tables import AuditEvent, CaseTechnique, Evidence, NoteRevision, RunStep
from tests.workflows.triage_helpers import (
    ingest_one,
    make_runner,
    prepare_waiting_cases,
    race_worker,
    scripted,
    settings_for,
)

REPO = Path(__file__).resolve().parents[2]
REPETITIONS = 20


def test_two_processes_approving_the_same_interrupt_finalize_once(db_url: str, tmp_path: Path) -> None:
    settings = settings_for(db_url, tmp_path)
    cases = prepare_waiting_cases(settings, REPETITIONS)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=race_worker, args=(db_url, str(settings.siem.path), cases, barrier, out, who))
        for who in ("ana", "bob")
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in range(2 * REPETITIONS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    runner = make_runner(settings, None)
    with runner.factory() as session:
        for case_id in cases:
            finals = session.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.case_id == case_id, AuditEvent.action == "run.finalize_case"
                )
            )
            assert finals == 1, (case_id, [r for r in results if r[0] == case_id])
            applied = [r for r in results if r[0] == case_id and r[2] == "applied"]
            assert len(applied) == 1, results
            assert (
                session.scalar(
                    select(func.count(AuditEvent.id)).where(
                        AuditEvent.case_id == case_id, AuditEvent.action == "run.decision"
                    )
                )
                == 1
            )


CHILD = """
import sys
from pathlib import Path
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.settings import Settings
from tests.workflows.triage_helpers import make_runner, scripted_rules
import time

block = Path(sys.argv[3])

def blocked(messages, method, schema):
    deadline = time.monotonic() + 240
    while block.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise SystemExit("the test should have killed this process")

settings = Settings(database={"url": sys.argv[1]}, siem={"path": Path(sys.argv[4])},
                    model={"backend": "scripted"}, worker={"run_lease_seconds": 2})
rules = [ScriptRule(blocked, node="assess_case", method="generate_structured"), *scripted_rules()]
make_runner(settings, ScriptedModel(rules)).advance(sys.argv[2])
"""


def _finished_nodes(runner: Runner, run_id: str) -> set[str]:
    """The nodes the run finished (its ``run_steps``: the runner checkpoints only when the graph exits)."""
    with runner.factory() as s:
        return set(s.scalars(select(RunStep.node).where(RunStep.run_id == run_id)))


def test_killed_mid_graph_resumes_from_checkpoint_without_duplicates(db_url: str, tmp_path: Path) -> None:
    settings = settings_for(db_url, tmp_path, worker={"run_lease_seconds": 2})
    case_id = ingest_one(
        settings,
        {
            "source": "test",
            "source_ref": "kill-1",
            "title": "Encoded PowerShell",
            "severity": "high",
            "rule": {"id": "r-ps", "tags": ["attack.t1059.001", "attack.t1027"]},
            "entities": {"hosts": ["WS1"]},
        },
    )
    runner = make_runner(settings, scripted())
    run_id = runner.start("alert_triage", case_id=case_id, actor="test")
    block = tmp_path / "block-assess"
    block.write_text("hold")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, run_id, str(block), str(settings.siem.path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _finished_nodes(runner, run_id) != {"gather_evidence", "map_attack"}:
            assert child.poll() is None, child.communicate()[0]
            assert time.monotonic() < deadline, "the map_attack step never appeared"
            time.sleep(0.1)
        time.sleep(0.3)  # inside assess_case, blocked on the file
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert runner.get(run_id).status == RunStatus.running  # left behind by the dead worker
    assert runner.advance(run_id).advanced is False  # its lease has not expired yet
    time.sleep(2.5)
    result = runner.advance(run_id)
    assert result.status is RunStatus.awaiting_input, runner.get(run_id).error
    with runner.factory() as session:

        def count(model, action=None):  # type: ignore[no-untyped-def]
            if action:
                return session.scalar(
                    select(func.count(AuditEvent.id)).where(
                        AuditEvent.case_id == case_id, AuditEvent.action == action
                    )
                )
            return session.scalar(select(func.count(model.id)).where(model.case_id == case_id))

        assert count(AuditEvent, "evidence.added") == 1
        assert count(AuditEvent, "techniques.added") == 1
        assert count(AuditEvent, "note.drafted") == 1
        evidence = list(session.scalars(select(Evidence.evidence_id).where(Evidence.case_id == case_id)))
        assert len(evidence) == len(set(evidence)) >= 1
        techniques = list(
            session.scalars(select(CaseTechnique.technique_id).where(CaseTechnique.case_id == case_id))
        )
        assert sorted(techniques) == sorted(set(techniques)) and "T1059.001" in techniques
        assert session.scalar(select(func.count(NoteRevision.id))) == 1
    assert runner.get(run_id).attempts == 2
