"""``socflow eval`` and ``socflow bench`` through the command line (Typer runner), shipped examples too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from socflow.cli_eval import bench_command, eval_command
from tests.evaluation.conftest import SAMPLES

REPORT_KEYS = {"task", "dataset", "model", "workflow_version", "metrics", "items", "counts", "totals"}
ITEM_KEYS = {"id", "prediction", "label", "seconds", "prompt_tokens", "completion_tokens"}

app = typer.Typer()
app.command("eval")(eval_command)
app.command("bench")(bench_command)


def _eval(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["eval", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "metric" in result.output  # the table
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) >= REPORT_KEYS
    assert all(set(item) >= ITEM_KEYS for item in report["items"])
    return report


@pytest.mark.parametrize(
    ("task", "dataset"),
    [
        ("attack-text", "attack-text/sigma_titles.jsonl"),
        ("attack-logs", "attack-logs"),
        ("triage", "triage/hand_labelled.jsonl"),
    ],
)
def test_shipped_examples_run(tmp_path: Path, task: str, dataset: str) -> None:
    report = _eval(tmp_path, task, str(SAMPLES / dataset), "--model", "none", "--limit", "20")
    assert report["task"] == task and report["model"] == "none"
    assert 0 < len(report["items"]) <= 20
    if task != "triage":
        assert report["metrics"]["invalid_ids_emitted"] == 0


def test_attack_logs_sigma_regression_model_none_and_tiny(
    tmp_path: Path, shared_data: Path, tiny_dir: Path
) -> None:
    logs = shared_data / "logs"
    none = _eval(tmp_path, "attack-logs", str(logs), "--include", "sigma-regression/**", "--limit", "6")
    tiny = _eval(
        tmp_path,
        "attack-logs",
        str(logs),
        "--include",
        "sigma-regression/**",
        "--limit",
        "6",
        "--model",
        str(tiny_dir),
    )
    for report in (none, tiny):
        assert [i["id"].split("/")[0] for i in report["items"]] == ["sigma-regression"] * 6
        assert set(report["metrics"]) == {
            "all_sources",
            "retrieval_model_no_rule_tags",
            "invalid_ids_emitted",
        }
    assert sum(i["prompt_tokens"] for i in tiny["items"]) > 0
    assert sum(i["model_calls"] for i in none["items"]) == 0


def test_triage_with_tiny_model(tmp_path: Path, tiny_dir: Path) -> None:
    report = _eval(
        tmp_path,
        "triage",
        str(SAMPLES / "triage/hand_labelled.jsonl"),
        "--model",
        str(tiny_dir),
        "--limit",
        "2",
    )
    assert len(report["items"]) == 2
    assert all(i["prediction"].get("verdict") for i in report["items"])


def test_bad_invocations_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["eval", "nope", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["eval", "triage", str(tmp_path / "missing.jsonl")]).exit_code == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", "attack-text", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output
    assert (
        runner.invoke(app, ["eval", "triage", str(bad), "--model", str(tmp_path / "no-model")]).exit_code == 2
    )


def test_bench_prints_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--out",
            str(out),
            "--alerts",
            "40",
            "--overhead-alerts",
            "2",
            "--siem-events",
            "1000",
            "--no-batching",
            "--ingest-alerts",
            "40",
            "--postgres-url",
            "",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert {"overhead", "storage", "storm", "siem", "ingest"} <= set(figures)
    assert figures["ingest"]["sqlite_open_cases"] == 40 and figures["ingest"]["sqlite_storm_cases"] == 20
    # completed runs were compacted as they finished (no `db prune`): one checkpoint each
    storage = figures["storage"]
    assert storage["completed_runs"] == 3 and storage["checkpoints_per_completed_run"] == 1
    assert figures["storm"]["runs"] >= 20  # one case per incident, at least one run each
    for name in ("ratio_platform_to_bare", "runs_per_alert", "model_calls_per_alert", "db_bytes_per_alert"):
        assert name in result.output
    assert "ingest_events_per_s" in result.output
    assert (
        "ingest.sqlite_open_ratio_to_raw" in result.output
        and "ingest.sqlite_storm_api_alerts_per_s" in result.output
    )
