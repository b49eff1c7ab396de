import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from socflow.db import make_engine


def _run(args: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCFLOW_")} | settings
    return subprocess.run(
        [sys.executable, "-m", "socflow", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_init_is_idempotent_and_demo_adds_nothing_twice(tmp_path: Path) -> None:
    first = _run(["init"], tmp_path)
    assert first.returncode == 0, first.stderr
    secret = (tmp_path / ".env").read_text()
    assert "SOCFLOW_API__SECRET_KEY=" in secret
    again = _run(["init"], tmp_path)
    assert again.returncode == 0 and (tmp_path / ".env").read_text() == secret

    demo = _run(["demo", "--no-triage"], tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "4 new events" in demo.stdout  # the bundled events, loaded into the embedded SIEM
    assert "alerts: 5 new, 0 already ingested, 0 rejected; 5 triage runs queued" in demo.stdout
    second = _run(["demo", "--no-triage"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 new events (4 already loaded)" in second.stdout
    assert "alerts: 0 new, 5 already ingested, 0 rejected; 0 triage runs queued" in second.stdout
    listed = _run(["cases", "list"], tmp_path)
    assert "LSASS Process" in listed.stdout


def test_demo_triages_its_runs_concurrently_and_prints_a_log_readable_queue(tmp_path: Path) -> None:
    """The demo's five triage runs go through one runner at once (no model here: the marked fallbacks),
    each reaches the approval; stdout is not a terminal, so the queue is tab-separated, every column whole."""
    demo = _run(["demo"], tmp_path, SOCFLOW_MODEL__BACKEND="none")
    assert demo.returncode == 0, demo.stderr
    assert "triage: 5 runs, 5 at a time" in demo.stdout
    assert demo.stdout.count("-> awaiting_input") == 5
    lines = demo.stdout.splitlines()
    assert "id\tstatus\tseverity\tverdict\tconf\talerts\ttitle" in lines
    longest = "\tSuspicious File Downloaded From File-Sharing Website Via Certutil.EXE"
    assert any(line.endswith(longest) for line in lines)
    assert lines[-1].startswith("demo finished in ")


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert conn.scalar(text("PRAGMA busy_timeout")) >= 5000
            assert conn.scalar(text("PRAGMA foreign_keys")) == 1
    engine.dispose()
