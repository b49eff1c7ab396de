"""replay (shadow mode): approved cases re-run with another model, diffed against what analysts approved."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from socflow import wiring
from socflow.decisions import Decision, submit_decision
from socflow.evaluation import replay
from socflow.evaluation.tasks import EvalOptions
from socflow.grouping import OneCasePerAlert
from socflow.ingest import IngestService
from socflow.settings import Settings
from tests.evaluation.conftest import triage_model


def _approved_db(sqlite_url: str, tmp_path: Path) -> tuple[Path, list[int]]:
    """Three cases triaged by one model; two approved (one with an analyst's verdict), one left waiting."""
    settings = Settings(
        database={"url": sqlite_url}, siem={"path": tmp_path / "s.db"}, model={"backend": "none"}
    )
    model = triage_model({"ALPHA": ("true_positive", "high", 0.9), "BRAVO": ("true_positive", "high", 0.9)})
    services = wiring.build_services(settings, model=model, siem=None, dispatcher="null")
    factory, registry, runner = services.factory, services.registry, services.runner
    service = IngestService(
        factory, **(wiring.ingest_options(settings, registry) | {"grouper": OneCasePerAlert()})
    )
    cases = []
    for marker in ("ALPHA", "BRAVO", "BRAVO"):
        alert = {
            "source": "test",
            "source_ref": hashlib.sha1(f"{marker}{len(cases)}".encode()).hexdigest(),
            "title": f"Suspicious {marker}",
            "severity": "high",
            "rule": {"id": "r1", "tags": ["attack.t1059.001"]},
            "entities": {"hosts": ["WS1"]},
        }
        report = service.ingest_text(json.dumps(alert), actor="test")
        runner.advance(report.runs_queued[0])
        cases.append(report.items[0].case_id)
    submit_decision(runner, cases[0], Decision(action="approve", user="ann"))
    submit_decision(runner, cases[1], Decision(action="approve", user="ann", verdict="false_positive"))
    # Close the analysts' engine now: its last SQLite connection checkpoints the WAL into the database
    # file when it closes. Left open, that happened whenever the garbage collector got to the engine --
    # during the replay after other tests had left garbage behind -- and changed the file's bytes under
    # the "untouched" assertion (the file change counter), so the test failed only after other tests.
    services.close()
    return Path(sqlite_url.removeprefix("sqlite:///")), cases


def test_replay_diffs_against_approved(sqlite_url: str, tmp_path: Path) -> None:
    db, cases = _approved_db(sqlite_url, tmp_path)
    before = db.read_bytes()
    shadow = triage_model({"ALPHA": ("true_positive", "high", 0.8), "BRAVO": ("false_positive", "low", 0.8)})
    work = tmp_path / "work"
    work.mkdir()
    report = replay.run(EvalOptions(task="replay", dataset=db, workdir=work, model=shadow))
    assert [i.id for i in report.items] == [f"case-{cases[0]}", f"case-{cases[1]}"]  # the waiting one is not
    assert [i.label["verdict"] for i in report.items] == ["true_positive", "false_positive"]
    assert [i.prediction["verdict"] for i in report.items] == ["true_positive", "false_positive"]
    assert report.metrics["verdict_agreement"] == 1.0
    assert report.metrics["techniques"]["micro"]["f1"] == pytest.approx(1.0)
    assert 0.0 < report.metrics["note_similarity_mean"] <= 1.0
    assert db.read_bytes() == before  # shadow mode: the analysts' database is untouched
