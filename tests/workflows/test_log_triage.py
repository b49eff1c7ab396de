"""log_triage: label-likelihood scoring of raw log lines, ranking, and a case for the lines above the
threshold (scripted scorer), then end to end with the tiny in-process transformers model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from socflow.runner import RunStatus
from socflow.tables import ModelCall
from socflow.testing import ScriptedModel, ScriptRule, WorkflowHarness

BENIGN = [
    "Apr  9 10:01:22 web01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
    "COMMAND=/usr/bin/apt update",
    "Apr  9 10:02:10 web01 sudo:      bob : TTY=pts/1 ; PWD=/srv ; USER=root ; "
    "COMMAND=/bin/systemctl restart nginx",
    "Apr  9 10:03:44 web01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) "
    "by alice(uid=1000)",
    "Apr  9 10:04:02 web01 sudo: pam_unix(sudo:session): session closed for user root",
]
MALICIOUS = [
    "Apr  9 10:05:01 web01 bash[2211]: HISTORY: PID=2211 UID=1001 USER=guest CMD=nmap -sS -p- 10.0.0.0/24",
    "Apr  9 10:06:13 web01 bash[2211]: HISTORY: PID=2211 UID=1001 USER=guest "
    "CMD=echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK attacker@kali' >> /root/.ssh/authorized_keys",
    "Apr  9 10:07:30 web01 crontab[2405]: (root) REPLACE (root) by guest: * * * * * /tmp/.x/beacon.sh",
]
LINES = [BENIGN[0], MALICIOUS[0], BENIGN[1], MALICIOUS[1], BENIGN[2], MALICIOUS[2], BENIGN[3]]
MARKERS = {"nmap -sS": 0.97, "authorized_keys": 0.93, "crontab": 0.88}


def scorer(messages: list[Any], method: str, labels: Any) -> dict[str, float]:
    """The scripted scorer: planted markers score malicious, everything else benign."""
    prompt = messages[-1]["content"]
    malicious = next((p for marker, p in MARKERS.items() if marker in prompt), 0.08)
    return {"malicious": malicious, "benign": 1.0 - malicious}


def scripted() -> ScriptedModel:
    return ScriptedModel([ScriptRule(scorer, node="score_lines", method="score_labels")])


def test_planted_malicious_lines_rank_above_benign_sudo_and_open_a_case(tmp_path: Path) -> None:
    h = WorkflowHarness.create(tmp_path, model=scripted())
    done = h.run("log_triage", data={"lines": LINES, "threshold": 0.5}, expect=RunStatus.completed)
    state = h.state(done.run_id)
    ranked = [r["line"] for r in state["ranked"]]
    assert ranked[:3] == MALICIOUS and set(ranked[3:]) == set(BENIGN)
    assert [r["score"] for r in state["ranked"]] == sorted(
        (r["score"] for r in state["ranked"]), reverse=True
    )
    assert state["flagged"] == [LINES.index(line) for line in MALICIOUS]
    case_id = state["case_id"]
    with h.store() as store:
        case = store.get_case(case_id)
        assert case.status == "new" and "3 of 7 lines" in case.title
        evidence = store.list_evidence(case_id)
        assert sorted(e.data["line"] for e in evidence) == sorted(MALICIOUS)
        assert all(e.kind == "log_line" for e in evidence)
        assert [e.action for e in store.list_audit(case_id=case_id)][:2] == ["case.created", "evidence.added"]
    assert len([c for c in h.model.calls if c.method == "score_labels"]) == len(LINES)


def test_nothing_above_the_threshold_opens_no_case(tmp_path: Path) -> None:
    h = WorkflowHarness.create(tmp_path, model=scripted())
    done = h.run("log_triage", data={"lines": BENIGN}, expect=RunStatus.completed)
    state = h.state(done.run_id)
    assert state["flagged"] == [] and state.get("case_id") is None
    with h.store() as store:
        assert store.count_cases() == 0


def test_input_is_validated(tmp_path: Path) -> None:
    from pydantic import ValidationError

    h = WorkflowHarness.create(tmp_path, model=scripted())
    with pytest.raises(ValidationError):
        h.run("log_triage", data={"lines": ["", "  "]})
    with pytest.raises(ValidationError):
        h.run("log_triage", data={"lines": ["x"], "threshold": 2})


def test_cli_run_with_a_text_file(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``socflow workflow run log_triage --input FILE``: a text file of lines, then bad input and no model."""
    from typer.testing import CliRunner

    from socflow import wiring
    from socflow.cli import app

    logs = tmp_path / "auth.log"
    logs.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "none")
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    cmd = ["workflow", "run", "log_triage", "--input"]

    no_model = cli.invoke(app, [*cmd, str(logs)])  # scoring needs a model: the run fails with the reason
    assert no_model.exit_code == 1 and "config_error" in no_model.output, no_model.output

    def with_scripted_model(settings: Any, **options: Any) -> Any:  # the test's composition, passed down
        return wiring.build_services(settings, model=scripted().with_recorder, **options)

    done = cli.invoke(app, [*cmd, str(logs)], obj=with_scripted_model)
    assert done.exit_code == 0, done.output
    assert "completed" in done.stdout
    out = json.loads(done.stdout[done.stdout.index("{") :])
    assert out["case_id"] >= 1 and out["flagged"] == [1, 3, 5]
    assert [r["line"] for r in out["ranked"][:3]] == MALICIOUS

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lines": ["x"], "threshold": 7}), encoding="utf-8")
    refused = cli.invoke(app, [*cmd, str(bad)])
    assert refused.exit_code == 2 and "threshold" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


# -- the tiny in-process model ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    torch = pytest.importorskip("torch")
    from socflow.model.tiny import build_tiny_llama

    torch.set_num_threads(1)
    yield build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "seed0", 0)


@pytest.mark.model
def test_runs_end_to_end_with_the_tiny_in_process_model(tiny_llama: Path, tmp_path: Path) -> None:
    from socflow.model.factory import build_model_client
    from socflow.model.recorder import ModelCallRecorder
    from socflow.settings import ModelSettings

    model = build_model_client(
        ModelSettings(backend="transformers", name=str(tiny_llama), device="cpu"), None
    )
    h = WorkflowHarness.create(tmp_path, model=model)  # the harness gives the model its audit recorder
    assert isinstance(model.recorder, ModelCallRecorder)  # type: ignore[attr-defined]
    done = h.run("log_triage", data={"lines": LINES, "threshold": 0.0}, expect=RunStatus.completed)
    state = h.state(done.run_id)
    assert sorted(r["index"] for r in state["ranked"]) == list(range(len(LINES)))
    assert all(0.0 <= r["score"] <= 1.0 for r in state["ranked"])
    assert len(state["flagged"]) == len(LINES)  # threshold 0: every line is evidence
    with h.store() as store:
        assert len(store.list_evidence(state["case_id"])) == len(LINES)
    with h.factory() as session:
        calls = list(session.scalars(select(ModelCall).where(ModelCall.node == "score_lines")))
    assert len(calls) == len(LINES) and all(c.backend == "transformers" for c in calls)
