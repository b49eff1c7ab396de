"""Confidence calibration: the fit, the file, the runtime applying it to its own model only, the page."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from socflow.calibration import (
    Calibration,
    CalibrationError,
    apply_temperature,
    fit_temperature,
    load_calibration,
)
from socflow.evaluation.calibrate import ece
from socflow.store import CaseStore
from socflow.tables import AuditEvent
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted, settings_for

LABELS = ("true_positive", "benign_positive", "false_positive")


def _overconfident(n: int, seed: int) -> list[tuple[dict[str, float], str]]:
    """Scores that say 0.95 for their top label while it is right 60% of the time."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        top = rng.choice(LABELS)
        gold = top if rng.random() < 0.6 else rng.choice([x for x in LABELS if x != top])
        items.append(({k: 0.95 if k == top else 0.025 for k in LABELS}, gold))
    return items


def test_temperature_fit_softens_overconfident_scores_and_lowers_ece_on_held_out_items() -> None:
    fit, held = _overconfident(300, 1), _overconfident(300, 2)
    t = fit_temperature(fit)
    assert t > 1.5  # overconfident: the fit softens
    scaled = apply_temperature({"true_positive": 0.95, "benign_positive": 0.025, "false_positive": 0.025}, t)
    assert math.isclose(sum(scaled.values()), 1.0) and 0.5 < scaled["true_positive"] < 0.7
    assert ece(held, t) < ece(held) - 0.2
    # ranking never changes
    assert max(scaled, key=scaled.__getitem__) == "true_positive"
    with pytest.raises(CalibrationError):
        fit_temperature([])


def test_calibration_file_round_trips_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    Calibration.new("m", 2.5, 150, LABELS, ece_before=0.3, ece_after=0.05, held_out=150).write(path)
    loaded = load_calibration(path)
    assert (loaded.model, loaded.temperature, loaded.items, loaded.labels) == ("m", 2.5, 150, LABELS)
    path.write_text(json.dumps({"format": 1, "model": "m", "temperature": 500, "items": 3, "labels": ["a"]}))
    with pytest.raises(CalibrationError, match="temperature"):
        load_calibration(path)
    path.write_text("not json")
    with pytest.raises(CalibrationError):
        load_calibration(path)


@pytest.mark.parametrize("fitted_for", ["scripted", "another-model"])
def test_the_runtime_applies_a_calibration_to_the_model_it_was_fitted_for_only(
    db_url: str, tmp_path: Path, fitted_for: str
) -> None:
    path = tmp_path / "cal.json"
    Calibration.new(fitted_for, 3.0, 200, LABELS).write(path)
    settings = settings_for(db_url, tmp_path)
    settings.model.calibration = path
    case_id = ingest_one(settings, {"title": "Encoded PowerShell", "source": "edr", "severity": "high"})
    runner = make_runner(settings, scripted(confidence=0.9))
    runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    expected = apply_temperature({"true_positive": 0.9, "benign_positive": 0.05, "false_positive": 0.05}, 3.0)
    with runner.factory() as session:
        case = CaseStore(session).get_case(case_id)
        assessed = session.query(AuditEvent).filter_by(case_id=case_id, action="case.assessed").one()
    if fitted_for == "scripted":
        assert case.confidence == pytest.approx(expected["true_positive"], abs=1e-3)
        assert assessed.data["calibration"] == "calibrated: temperature 3 fitted on 200 labelled items"
    else:
        assert case.confidence == pytest.approx(0.9)
        assert assessed.data["calibration"] == "uncalibrated"


def test_the_case_page_says_whether_the_confidence_is_calibrated(db_url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from socflow.api import create_app
    from socflow.auth import Role
    from socflow.dispatch import NullDispatcher
    from tests.api.conftest import make_token
    from tests.web.helpers import login

    path = tmp_path / "cal.json"
    Calibration.new("scripted", 2.0, 240, LABELS).write(path)
    settings = settings_for(db_url, tmp_path)
    settings.model.calibration = path
    case_id = ingest_one(settings, {"title": "Encoded PowerShell", "source": "edr", "severity": "high"})
    runner = make_runner(settings, scripted(confidence=0.9))
    runner.advance(runner.start("alert_triage", case_id=case_id, actor="test"))
    with TestClient(create_app(settings, dispatcher=NullDispatcher())) as client:
        login(client, make_token(db_url, Role.analyst, name="ana"))
        page = client.get(f"/cases/{case_id}").text
    assert "Confidence calibrated: temperature 2 fitted on 240 labelled items." in page


def test_fit_calibration_scores_each_alert_with_the_triage_prompt_and_writes_the_file(tmp_path: Path) -> None:
    from socflow import wiring
    from socflow.evaluation import calibrate
    from socflow.evaluation.tasks import EvalOptions
    from socflow.model.scripted import ScriptedModel, ScriptRule

    rows = []
    for i in range(80):
        # the model says 0.96 "true_positive" for every alert; only 3 in 5 are
        label = "true_positive" if i % 5 < 3 else "false_positive"
        alert = {"title": f"Alert {i}", "source": "edr", "severity": "high", "source_ref": f"r{i}"}
        rows.append(json.dumps({"alert": alert, "label": label}))
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(rows) + "\n")
    seen: list[str] = []

    def scores(messages, method, labels):  # type: ignore[no-untyped-def]
        seen.append(messages[-1]["content"])
        return {"true_positive": 0.96, "benign_positive": 0.02, "false_positive": 0.02}

    model = ScriptedModel([ScriptRule(scores, method="score_labels")])
    opts = EvalOptions(task="triage", dataset=data, workdir=tmp_path, model=model, model_name="scripted")
    prompt_for, labels = wiring.triage_scoring()
    out = tmp_path / "cal.json"
    report = calibrate.fit(opts, out, prompt_for, labels)
    assert len(seen) == 80 and "Alert 7 (high)" in seen[7]  # the workflow's fenced case block
    assert report.counts["fit_items"] == 40 and report.counts["held_out_items"] == 40
    assert report.metrics["temperature"] > 1.5
    assert report.metrics["held_out_ece_after"] < report.metrics["held_out_ece_before"] - 0.2
    saved = load_calibration(out)
    assert (
        saved.model == "scripted" and saved.items == 40 and saved.temperature == report.metrics["temperature"]
    )
    with pytest.raises(CalibrationError, match="at least 40"):
        calibrate.fit(opts.__class__(**{**opts.__dict__, "limit": 30}), out, prompt_for, labels)
