"""Shared pieces of the triage tests: a scripted model, a case built from real events, the runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socflow.db import make_engine, session_factory
from socflow.ingest import IngestService
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.runner import Runner
from socflow.settings import Settings
from socflow.wiring import build_services


def note_sections(labels: list[str]) -> dict[str, Any]:
    cite = "[" + ", ".join(labels[:2]) + "]"
    return {
        "summary": [f"Encoded PowerShell ran on the host {cite}."],
        "impacted": [f"The host and the user running PowerShell {cite}."],
        "timeline": [f"PowerShell started with an encoded command {cite}."],
        "next_steps": ["Review the decoded command and the parent process."],
    }


def first_candidate(messages: Any, method: str, options: Any) -> str:
    return str(options[0])


def scripted_rules(verdict: str = "true_positive", confidence: float = 0.8) -> list[ScriptRule]:
    rest = (1.0 - confidence) / 2
    scores = {"true_positive": rest, "benign_positive": rest, "false_positive": rest} | {verdict: confidence}
    return [
        ScriptRule(first_candidate, node="map_attack", method="choose"),
        ScriptRule(
            {
                "verdict": verdict,
                "priority": "high",
                "rationale": "Encoded PowerShell on a workstation.",
                "evidence": ["E1"],
            },
            node="assess_case",
            method="generate_structured",
        ),
        ScriptRule(scores, node="assess_case", method="score_labels"),
        ScriptRule(
            lambda m, method, schema: note_sections(["E1", "E2"]),
            node="draft_note",
            method="generate_structured",
        ),
    ]


def settings_for(db_url: str, tmp: Path, **extra: Any) -> Settings:
    return Settings(
        database={"url": db_url},
        siem={"path": tmp / "siem.db"},
        model={"backend": "scripted"},
        **extra,
    )


def make_runner(settings: Settings, model: Any) -> Runner:
    """The runner of a composition on ``settings`` with ``model`` (a ScriptedModel's rules get a recorder)."""
    if isinstance(model, ScriptedModel) and model.recorder is None:
        return build_services(settings, model=model.with_recorder, dispatcher="null").runner
    return build_services(settings, model=model, dispatcher="null").runner


def ingest_one(settings: Settings, alert: dict[str, Any]) -> int:
    created: list[int] = []
    factory = session_factory(make_engine(settings.database.url))
    report = IngestService(factory, on_case_created=created.append).ingest_text(
        json.dumps(alert), actor="test"
    )
    assert report.accepted == 1, report
    return created[0]


def scripted(verdict: str = "true_positive", confidence: float = 0.8) -> ScriptedModel:
    return ScriptedModel(scripted_rules(verdict, confidence))


SAMPLE_DIR = "sigma-regression/rules/windows/process_creation/proc_creation_win_conhost_headless_powershell"


def alert_from_event(
    event: Any, *, ref: str = "real-1", severity: str = "high", **extra: Any
) -> dict[str, Any]:
    """A generic alert describing one real SIEM event (what a detection on it would send)."""
    return {
        "source": "test-sigma",
        "source_ref": ref,
        "title": "Powershell Executed From Headless ConHost Process",
        "severity": severity,
        "timestamp": event.timestamp,
        "description": f"{event.process} ran: {(event.command_line or '')[:300]}",
        "rule": {
            "id": "056c7317-9a09-4bd4-9067-d051312752ea",
            "name": "Headless ConHost PowerShell",
            "tags": ["attack.execution", "attack.t1059.001"],
        },
        "entities": {
            "hosts": [event.host] if event.host else [],
            "users": [event.user] if event.user else [],
            "processes": [event.process] if event.process else [],
        },
        **extra,
    }


def prepare_waiting_cases(settings: Settings, n: int, *, prefix: str = "race") -> list[int]:
    """``n`` cases whose alert_triage runs wait at the approval interrupt."""
    runner = make_runner(settings, scripted())
    cases = []
    for i in range(n):
        case_id = ingest_one(
            settings,
            {
                "source": "test",
                "source_ref": f"{prefix}-{i}",
                "title": f"Encoded PowerShell {i}",
                "severity": "high",
                "rule": {"id": "r-ps", "tags": ["attack.t1059.001"]},
                "entities": {"hosts": [f"WS{i}"]},
            },
        )
        result = runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
        assert result.status.value == "awaiting_input", runner.get(result.run_id).error
        cases.append(case_id)
    return cases


def race_worker(db_url: str, siem_path: str, case_ids: list[int], barrier: Any, out: Any, who: str) -> None:
    """One of two processes that approve the same interrupts at the same moment (spawned by the race test)."""
    from socflow.decisions import Decision, submit_decision
    from socflow.errors import SocflowError

    settings = Settings(
        database={"url": db_url}, siem={"path": Path(siem_path)}, model={"backend": "scripted"}
    )
    runner = make_runner(settings, ScriptedModel([]))
    for case_id in case_ids:
        barrier.wait(timeout=60)
        try:
            result = submit_decision(runner, case_id, Decision(action="approve", user=who))
            out.put((case_id, who, "applied" if result.advanced else "noop"))
        except SocflowError as exc:  # the other process won before this one looked
            out.put((case_id, who, type(exc).__name__))
