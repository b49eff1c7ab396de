"""Streaming detection through the scheduled job: new events raise alerts once, across restarts; suppressions
(allow-list, threshold, aggregation) silence what they should and record why; related detections become
evidence; a case closed as false positive offers a suppression proposal that takes effect when accepted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.evidence import CaseContext, EvidenceProvider
from socflow.ingest import IngestService
from socflow.settings import Settings
from socflow.store import CaseStore
from socflow.tables import Alert, AuditEvent, Case
from tools.siem.detection import detection_pass, ingest_sink, run_detection_pass
from tools.siem.embedded import EmbeddedSiem
from tools.siem.pack import RuleSet, load_rule_set
from tools.siem.related import RelatedDetections, RuleInfo
from tools.siem.stream import SUPPRESSED, StreamDetector, collect
from tools.siem.suppress import Aggregation, Suppression, SuppressionConfig, Threshold
from tools.siem.tuning import accepted_suppressions, decide, list_proposals, propose

WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return load_rule_set()


@pytest.fixture(scope="module")
def samples(regression_dir: Path, pack: RuleSet) -> list[Path]:
    """Regression samples (one event file each) whose own rule is enabled in the pack."""
    enabled = {r.rule_id for r in pack.rules if pack.rule_filter.enabled(r)}
    files = [p for p in sorted(regression_dir.rglob("*.json")) if p.stem in enabled]
    return files[:6]


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield session_factory(engine)
    engine.dispose()


def _settings(tmp_path: Path, sqlite_url: str, suppressions: Path | None = None) -> Settings:
    return Settings(
        database={"url": sqlite_url},  # type: ignore[arg-type]
        siem={"path": tmp_path / "siem.db"},  # type: ignore[arg-type]
        detection={  # type: ignore[arg-type]
            "pack_dir": tmp_path / "no-update",
            "cache_path": tmp_path / "cache.json.gz",
            "suppressions": suppressions,
        },
    )


def _alert_refs(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        query = select(Alert.source_ref).where(Alert.source == "socflow-sigma")
        return [r or "" for r in session.scalars(query)]


class Scheduler:
    """The job as a scheduler runs it: every ``interval`` seconds in a thread; ``stop`` ends the 'process'."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], interval: float = 0.2) -> None:
        self.settings, self.factory, self.interval = settings, factory, interval
        self.sent = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        service = IngestService(self.factory)
        while not self._stop.is_set():
            try:
                self.sent += run_detection_pass(self.settings, ingest_sink(service), factory=self.factory)
            except Exception as exc:  # surfaced by the test, not swallowed
                self.errors.append(exc)
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)


def _wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {WAIT_SECONDS}s waiting for {what}")


def test_appended_events_raise_alerts_through_the_job_exactly_once_across_restarts(
    samples: list[Path], tmp_path: Path, sqlite_url: str, factory: sessionmaker[Session]
) -> None:
    settings = _settings(tmp_path, sqlite_url)
    with EmbeddedSiem(settings.siem.path) as siem:
        siem.load(samples[:3])
    job = Scheduler(settings, factory)
    _wait_for(lambda: len(_alert_refs(factory)) >= 3, "alerts for the first three samples")
    job.stop()
    assert not job.errors
    first = _alert_refs(factory)
    assert len(first) == len(set(first)) >= 3

    # restart: a new job on the same store and database; nothing new, nothing sent again
    job = Scheduler(settings, factory)
    time.sleep(1.0)
    with EmbeddedSiem(settings.siem.path) as siem:
        siem.load(samples[3:])  # events appended while the job runs
    _wait_for(lambda: len(_alert_refs(factory)) >= len(first) + 3, "alerts for the appended samples")
    job.stop()
    assert not job.errors
    refs = _alert_refs(factory)
    assert len(refs) == len(set(refs))
    assert set(first) < set(refs)
    assert job.sent == len(refs) - len(first)  # the restarted job sent only the new alerts
    with EmbeddedSiem(settings.siem.path) as siem:  # a pass with nothing new sends nothing
        assert siem.max_rowid() > 0
    assert run_detection_pass(settings, ingest_sink(IngestService(factory)), factory=factory) == 0


def test_a_crash_after_sending_resends_the_same_alert_which_ingest_drops(
    samples: list[Path], tmp_path: Path, sqlite_url: str, factory: sessionmaker[Session]
) -> None:
    settings = _settings(tmp_path, sqlite_url)
    with EmbeddedSiem(settings.siem.path) as siem:
        siem.load(samples[:1])
    service = IngestService(factory)
    sink = ingest_sink(service)

    def crashing(alerts):  # type: ignore[no-untyped-def]
        sink(alerts)
        raise RuntimeError("worker killed after the alerts were ingested")

    with pytest.raises(RuntimeError):
        run_detection_pass(settings, crashing, factory=factory)
    assert len(_alert_refs(factory)) >= 1
    resent = run_detection_pass(settings, sink, factory=factory)
    assert resent == len(_alert_refs(factory))  # the same alerts again ...
    assert len(_alert_refs(factory)) == resent  # ... which ingest stored once


def test_allow_listed_field_value_silences_a_rule_and_the_suppression_is_recorded(
    samples: list[Path], tmp_path: Path, pack: RuleSet
) -> None:
    with EmbeddedSiem(tmp_path / "siem.db") as siem:
        siem.load(samples[:1])
        rules = pack.enabled()
        alerts, sink = collect()
        StreamDetector(siem, rules).run_pass(sink)
        assert alerts
        fired = alerts[0]
        host = fired.entities.hosts[0]
    config_file = tmp_path / "suppressions.yml"
    config_file.write_text(
        "suppressions:\n"
        f"  - id: lab-host\n    rule: {fired.rule.id}\n    reason: lab machine, expected\n"
        f"    match:\n      host.name: ['{host.upper()}']\n",
        encoding="utf-8",
    )
    config = SuppressionConfig.load(config_file)
    with EmbeddedSiem(tmp_path / "fresh.db") as siem:
        siem.load(samples[:1])
        alerts, sink = collect()
        report = StreamDetector(siem, rules, config).run_pass(sink)
        assert fired.rule.id not in {a.rule.id for a in alerts}
        assert report.suppressed.by_id["lab-host"] >= 1
        rows = siem.connection.execute(
            "SELECT status, reason FROM detections WHERE rule_id = ?", (fired.rule.id,)
        ).fetchall()
        assert rows and all(r == (SUPPRESSED, "lab-host") for r in rows)
    # a value that does not match leaves the rule alone
    other = SuppressionConfig(
        suppressions=[Suppression(id="x", rule=fired.rule.id, reason="r", match={"host.name": ["other"]})]
    )
    with EmbeddedSiem(tmp_path / "third.db") as siem:
        siem.load(samples[:1])
        alerts, sink = collect()
        StreamDetector(siem, rules, other).run_pass(sink)
        assert fired.rule.id in {a.rule.id for a in alerts}


def test_threshold_and_aggregation_per_host_and_rule(
    samples: list[Path], tmp_path: Path, pack: RuleSet
) -> None:
    rules = pack.enabled()
    with EmbeddedSiem(tmp_path / "a.db") as siem:
        siem.load(samples[:2])
        alerts, sink = collect()
        high = SuppressionConfig(thresholds=[Threshold(min_events=1000)])
        report = StreamDetector(siem, rules, high).run_pass(sink)
        assert alerts == [] and report.below_threshold >= 2
    config = SuppressionConfig(aggregation=Aggregation(window_seconds=10 * 365 * 86400))
    with EmbeddedSiem(tmp_path / "b.db") as siem:
        siem.load(samples[:1])
        alerts, sink = collect()
        detector = StreamDetector(siem, rules, config, batch=1)
        detector.run_pass(sink)
        first = {(a.rule.id, a.source_ref) for a in alerts}
        siem.load(samples[:1])  # identical events: duplicates, nothing new
        siem.load(samples[1:2])
        detector.run_pass(sink)
        refs = [a.source_ref for a in alerts]
        assert first <= {(a.rule.id, a.source_ref) for a in alerts}
        assert len(refs) == len(set(refs))


def test_related_detections_are_evidence_with_stable_ids(
    samples: list[Path], tmp_path: Path, pack: RuleSet
) -> None:
    with EmbeddedSiem(tmp_path / "siem.db") as siem:
        siem.load(samples[:2])
        alerts, sink = collect()
        StreamDetector(siem, pack.enabled()).run_pass(sink)
        host = alerts[0].entities.hosts[0]
        titles = {r.rule_id: RuleInfo(title=r.title, level=r.level) for r in pack.windows()}
        provider = RelatedDetections(siem, titles)
        assert isinstance(provider.name, str)
        _: EvidenceProvider = provider  # the seam's Protocol, checked by mypy
        items = provider.evidence(CaseContext(case_id=42, hosts=(host.upper(),)))
        again = provider.evidence(CaseContext(case_id=42, hosts=(host,)))
        assert items and [i.evidence_id for i in items] == [i.evidence_id for i in again]
        assert {i.data["rule_id"] for i in items} >= {alerts[0].rule.id}
        assert all(i.kind == "sigma_detection" and host.lower() in i.summary for i in items)
        other_case = provider.evidence(CaseContext(case_id=43, hosts=(host,)))
        assert {i.evidence_id for i in other_case}.isdisjoint({i.evidence_id for i in items})
        assert provider.evidence(CaseContext(case_id=42, hosts=("nobody-here",))) == []


def test_false_positive_case_offers_a_proposal_that_takes_effect_when_accepted(
    samples: list[Path], tmp_path: Path, sqlite_url: str, factory: sessionmaker[Session], pack: RuleSet
) -> None:
    settings = _settings(tmp_path, sqlite_url)
    with EmbeddedSiem(settings.siem.path) as siem:
        siem.load(samples[:1])
    service = IngestService(factory)
    assert run_detection_pass(settings, ingest_sink(service), factory=factory) >= 1
    with factory() as session, session.begin():
        alert = session.scalars(select(Alert).where(Alert.source == "socflow-sigma")).first()
        assert alert is not None and alert.case_id is not None
        rule_id = alert.rule_id
        case = session.get(Case, alert.case_id)
        assert case is not None
        case.status, case.verdict = "closed", "false_positive"
    fields = {r.rule_id: r.compiled.fields for r in pack.windows() if r.compiled is not None}
    proposals = propose(factory, lambda rid: fields.get(rid, ()))
    assert [p.rule_id for p in proposals if p.rule_id == rule_id] == [rule_id]
    proposal = next(p for p in proposals if p.rule_id == rule_id)
    assert proposal.match and proposal.status == "pending"
    assert propose(factory, lambda rid: fields.get(rid, ())) == []  # offered once
    assert accepted_suppressions(factory) == []
    decide(factory, proposal.id, accept=True, actor="eve", comment="lab noise")
    with factory() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_type == "suppression_proposal")
        ).all()
        assert "suppression_proposal.accepted" in actions
        count_before = session.scalar(select(func.count()).select_from(Alert))
    [suppression] = [s for s in accepted_suppressions(factory) if s.rule == rule_id]
    # the next pass over the same events (a fresh store) is silenced by the accepted proposal
    fresh = _settings(tmp_path / "again", sqlite_url)
    with EmbeddedSiem(fresh.siem.path) as siem:
        siem.load(samples[:1])
    sent: list = []
    run_detection_pass(fresh, sent.extend, factory=factory)
    assert rule_id not in {a.rule.id for a in sent}
    with EmbeddedSiem(fresh.siem.path) as siem:
        rows = siem.connection.execute("SELECT reason FROM detections WHERE rule_id = ?", (rule_id,))
        reasons = {r[0] for r in rows}
    assert reasons == {suppression.id}
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == count_before


def test_closing_a_case_as_false_positive_offers_a_proposal_at_the_next_detection_pass(
    samples: list[Path], tmp_path: Path, sqlite_url: str, factory: sessionmaker[Session]
) -> None:
    settings = _settings(tmp_path, sqlite_url)
    with EmbeddedSiem(settings.siem.path) as siem:
        siem.load(samples[:1])
    sink = ingest_sink(IngestService(factory))
    first = detection_pass(settings, sink, factory=factory)
    assert first.alerts >= 1 and first.proposals == 0  # nothing closed yet: nothing offered
    with factory() as session, session.begin():
        alert = session.scalars(select(Alert).where(Alert.source == "socflow-sigma")).first()
        assert alert is not None and alert.case_id is not None
        rule_id, case_id = alert.rule_id, alert.case_id
        store = CaseStore(session)
        store.set_assessment(case_id, verdict="false_positive", confidence=0.9, priority=None, actor="eve")
        store.move_case(case_id, "closed", actor="eve", reason="lab noise")
    # the scheduled pass (no new events) offers the proposal, audited, without `siem tuning list`
    second = detection_pass(settings, sink, factory=factory)
    assert second.alerts == 0 and second.proposals >= 1
    [proposal] = [
        p for p in list_proposals(factory, "pending") if p.case_id == case_id and p.rule_id == rule_id
    ]
    assert proposal.match  # the rule's field values that made it fire
    with factory() as session:
        audited = session.scalars(
            select(AuditEvent.entity_id).where(AuditEvent.action == "suppression_proposal.created")
        ).all()
    assert str(proposal.id) in audited
    assert detection_pass(settings, sink, factory=factory).proposals == 0  # offered once


def test_siem_load_detect_writes_each_alert_once(
    samples: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tools.siem.cli import app

    monkeypatch.setenv("SOCFLOW_DETECTION__PACK_DIR", str(tmp_path / "no-update"))
    monkeypatch.setenv("SOCFLOW_DETECTION__CACHE_PATH", str(tmp_path / "cache.json.gz"))
    store, out = tmp_path / "siem.db", tmp_path / "alerts.ndjson"
    runner = CliRunner()
    for paths in ([samples[0]], [samples[0]], [samples[1]]):
        args = ["load", *map(str, paths), "--detect", "--out", str(out), "--siem-path", str(store)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    refs = [a["source_ref"] for a in lines]
    assert len(refs) == len(set(refs)) >= 2
    assert {samples[0].stem, samples[1].stem} <= {a["rule"]["id"] for a in lines}
