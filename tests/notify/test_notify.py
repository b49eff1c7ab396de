"""Notifications through the outbox: email to a real SMTP server, signed webhooks a receiver verifies,
Slack's message format with attacker text escaped, retries while the receiver is down (nothing lost or
doubled), and exactly one notification per escalation, new critical case and SLA breach."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from socflow.api import create_app
from socflow.auth import Role
from socflow.cli import app as cli
from socflow.db import make_engine, session_factory
from socflow.dispatch import NullDispatcher
from socflow.errors import ConfigError
from socflow.notify import load_routing, notify_pass
from socflow.notify_channels import email_message, slack_message
from socflow.outbox import deliver_outbox
from socflow.schemas import now_utc
from socflow.settings import Settings, get_settings
from socflow.tables import AuditEvent, Case, OutboxMessage, WorkflowRun
from socflow.wiring import build_jobs
from tests.api.conftest import bearer, make_token
from tests.notify.receivers import free_port, smtp_server, verify, webhook_receiver
from tests.workflows.triage_helpers import ingest_one, make_runner, scripted

SECRET = "notify-hook-secret"
CASE_URL = "https://soc.example/cases/{case_id}"


def settings_for(db_url: str, tmp_path: Path, **notify: Any) -> Settings:
    return Settings(
        database={"url": db_url},
        siem={"path": tmp_path / "siem.db"},
        model={"backend": "scripted"},
        writeback={"backoff_seconds": 60, "case_url": CASE_URL},
        worker={"outbox_interval_seconds": 3600, "sweep_interval_seconds": 3600},
        notify={"webhook_secret": SECRET, "interval_seconds": 3600, **notify},
    )


def alert(ref: str, *, title: str = "Ransomware note", severity: str = "critical", rule: str = "r1") -> dict:
    return {
        "source": "edr",
        "source_ref": ref,
        "title": title,
        "severity": severity,
        "rule": {"id": rule},
        "entities": {"hosts": ["WS1"]},
    }


@pytest.fixture
def factory_of() -> Iterator[Any]:
    engines: list[Any] = []

    def make(settings: Settings) -> sessionmaker[Session]:
        engine = make_engine(settings.database.url)
        engines.append(engine)
        return session_factory(engine)

    yield make
    for engine in engines:
        engine.dispose()


def rows(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with factory() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def events(factory: sessionmaker[Session]) -> Counter[str]:
    return Counter(r.payload["event"] for r in rows(factory) if r.target.startswith("notify."))


def run_job(settings: Settings, factory: sessionmaker[Session]) -> None:
    """The registry's ``notify`` job, as the scheduler runs it (a test double holds what it reads)."""
    services = SimpleNamespace(settings=settings, factory=factory)
    build_jobs(settings).get("notify").run(services)  # type: ignore[arg-type]


def test_off_by_default_and_yaml_routing(sqlite_url: str, tmp_path: Path) -> None:
    plain = Settings(_env_file=None, database={"url": sqlite_url})  # type: ignore[call-arg]
    assert "notify" not in build_jobs(plain).names()
    ingest_one(plain, alert("off-1"))
    assert notify_pass(plain).counts() == {"events": 0, "enqueued": 0, "breaches": 0}

    routing = tmp_path / "notify.yaml"
    routing.write_text(
        "routes:\n  escalated: [slack, email]\n  sla_breach: [webhook]\nsla:\n  acknowledge: {critical: 60}\n"
    )
    from_file = Settings(_env_file=None, notify={"file": routing})  # type: ignore[call-arg]
    loaded = load_routing(from_file.notify)
    assert loaded.routes == {"escalated": ["slack", "email"], "sla_breach": ["webhook"]}
    assert loaded.sla_acknowledge == {"critical": 60.0} and loaded.sla_decide["critical"] == 3600.0
    assert build_jobs(from_file).get("notify").every == 30.0
    routing.write_text("routes:\n  escalated: [pager]\n")
    with pytest.raises(ConfigError, match="unknown channel 'pager'"):
        load_routing(from_file.notify)
    with pytest.raises(ValueError, match="unknown notification event"):
        Settings(_env_file=None, notify={"routes": {"closed": ["slack"]}})  # type: ignore[call-arg]


def test_email_arrives_at_a_real_smtp_server(sqlite_url: str, tmp_path: Path, factory_of: Any) -> None:
    title = "Ransomware on WS1\r\nBcc: victim@evil.example"
    with smtp_server() as mailbox:
        settings = settings_for(
            sqlite_url,
            tmp_path,
            routes={"critical_case": ["email"]},
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_from="socflow@soc.example",
            smtp_to="oncall@soc.example, lead@soc.example",
        )
        factory = factory_of(settings)
        case_id = ingest_one(settings, alert("mail-1", title=title))
        run_job(settings, factory)
        assert deliver_outbox(settings, factory=factory).counts()["delivered"] == 1
        ((recipients, message),) = mailbox.messages
    assert recipients == ["oncall@soc.example", "lead@soc.example"]
    assert message["To"] == "oncall@soc.example, lead@soc.example"
    assert message["From"] == "socflow@soc.example"
    subject = str(message["Subject"]).strip()  # a long subject is folded: unfolded, it may start with a space
    assert subject.startswith(f"[socflow] New critical case #{case_id}: Ransomware on WS1")
    assert "\r" not in subject and "\n" not in subject and message["Bcc"] is None  # no header injection
    body = message.get_content()
    assert f"https://soc.example/cases/{case_id}" in body and "Severity critical" in body
    (row,) = rows(factory)
    assert message["X-Socflow-Delivery"] == row.id and row.status == "delivered"

    # the subject stays one bounded line even for text that skipped the case's cleaning
    raw = {"event": "critical_case", "case": {"id": 7, "title": "x\r\nBcc: a@b\n" + "y" * 5000}}
    built = email_message(raw, sender="s@x", recipients=["r@x"], case_url="u", delivery_id="d")
    assert "\n" not in str(built["Subject"]) and len(str(built["Subject"])) <= 200 and built["Bcc"] is None


def test_webhook_signature_verifies_and_a_tampered_body_is_refused(
    sqlite_url: str, tmp_path: Path, factory_of: Any
) -> None:
    with webhook_receiver(SECRET) as receiver:
        settings = settings_for(
            sqlite_url, tmp_path, routes={"critical_case": ["webhook"]}, webhook_url=receiver.url + "/hook"
        )
        factory = factory_of(settings)
        case_id = ingest_one(settings, alert("hook-1"))
        run_job(settings, factory)
        assert deliver_outbox(settings, factory=factory).counts()["delivered"] == 1
        ((delivery, body),) = receiver.accepted.items()
        assert body["event"] == "critical_case" and body["case"]["id"] == case_id
        assert body["case_url"] == f"https://soc.example/cases/{case_id}"
        ((headers, raw),) = receiver.raw
        assert headers["x-socflow-delivery"] == delivery == rows(factory)[0].id
        assert headers["x-socflow-event"] == "critical_case"
        assert verify(SECRET, headers, raw) and not verify("wrong-secret", headers, raw)
        assert SECRET not in raw.decode()

        tampered = raw.replace(b"critical_case", b"assigned")
        forward = {k: v for k, v in headers.items() if k.startswith("x-socflow") or k == "content-type"}
        answer = httpx.post(receiver.url + "/hook", content=tampered, headers=forward)
        assert answer.status_code == 401 and receiver.refused == 1 and len(receiver.accepted) == 1


def test_receiver_down_retries_then_delivers_once(sqlite_url: str, tmp_path: Path, factory_of: Any) -> None:
    port = free_port()  # nothing listens here yet
    settings = settings_for(
        sqlite_url,
        tmp_path,
        routes={"critical_case": ["webhook"]},
        webhook_url=f"http://127.0.0.1:{port}/hook",
    )
    factory = factory_of(settings)
    for n in range(3):
        ingest_one(settings, alert(f"down-{n}", rule=f"rule-{n}"))
    run_job(settings, factory)
    assert events(factory) == {"critical_case": 3}
    t0 = now_utc()
    assert deliver_outbox(settings, factory=factory, clock=lambda: t0).counts() == {
        "delivered": 0,
        "retrying": 3,
        "failed": 0,
        "skipped": 0,
    }
    assert deliver_outbox(settings, factory=factory, clock=lambda: t0).counts()["retrying"] == 0  # backoff

    env = {"SOCFLOW_DATABASE__URL": sqlite_url}
    listed = CliRunner().invoke(cli, ["outbox", "list", "--status", "pending", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    pending = json.loads(listed.stdout)
    assert len(pending) == 3 and {p["target"] for p in pending} == {"notify.webhook"}
    assert all(p["attempts"] == 1 and "ConnectError" in (p["last_error"] or "") for p in pending)

    with webhook_receiver(SECRET, port) as receiver:
        later = t0 + timedelta(hours=1)
        assert deliver_outbox(settings, factory=factory, clock=lambda: later).counts()["delivered"] == 3
        assert deliver_outbox(settings, factory=factory, clock=lambda: later).counts()["delivered"] == 0
        run_job(settings, factory)  # the job again: no new rows
        assert deliver_outbox(settings, factory=factory, clock=lambda: later).counts()["delivered"] == 0
        assert set(receiver.seen) == {r.id for r in rows(factory)} and set(receiver.seen.values()) == {1}
        assert {b["case"]["id"] for b in receiver.accepted.values()} == {r.case_id for r in rows(factory)}

        # at-least-once: a send whose outcome was lost is sent again; the receiver drops it by delivery id
        from socflow.notify_channels import SignedWebhookTarget

        row = rows(factory)[0]
        target = SignedWebhookTarget(settings.notify, CASE_URL)
        target.deliver(row.id, row.payload)
        target.close()
        assert receiver.seen[row.id] == 2 and len(receiver.accepted) == 3


def _waiting_run(settings: Settings, case_id: int) -> WorkflowRun:
    engine = make_engine(settings.database.url)
    with session_factory(engine)() as s:
        (run,) = s.scalars(select(WorkflowRun).where(WorkflowRun.case_id == case_id))
    engine.dispose()
    return run


def test_escalation_assignment_and_critical_case_notify_once(
    db_url: str, tmp_path: Path, factory_of: Any
) -> None:
    with webhook_receiver(SECRET) as receiver:
        settings = settings_for(
            db_url,
            tmp_path,
            routes={"escalated": ["webhook"], "assigned": ["webhook"], "critical_case": ["webhook"]},
            webhook_url=receiver.url + "/hook",
        )
        factory = factory_of(settings)
        tokens = {r: make_token(db_url, r) for r in (Role.ingest, Role.analyst)}
        with TestClient(create_app(settings, dispatcher=NullDispatcher())) as client:
            posted = client.post(
                "/api/v1/alerts", json=alert("esc-1", severity="high"), headers=bearer(tokens[Role.ingest])
            )
            case_id = posted.json()["items"][0]["case_id"]
            runner = make_runner(settings, scripted())
            assert runner.advance(_waiting_run(settings, case_id).id).status.value == "awaiting_input"
            a = bearer(tokens[Role.analyst])
            assert client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "bob"}, headers=a).is_success
            assert client.patch(f"/api/v1/cases/{case_id}", json={"assignee": "bob"}, headers=a).is_success
            decided = client.post(
                f"/api/v1/cases/{case_id}/decision",
                json={"action": "escalate", "reason": "lateral movement, call IR"},
                headers=a,
            )
            assert decided.status_code == 200 and decided.json()["case_status"] == "escalated", decided.text

            for ref in ("crit-1", "crit-2"):  # a new critical case, then a second alert joining it
                client.post(
                    "/api/v1/alerts", json=alert(ref, rule="crit"), headers=bearer(tokens[Role.ingest])
                )
        run_job(settings, factory)
        run_job(settings, factory)
        assert events(factory) == {"escalated": 1, "assigned": 1, "critical_case": 1}
        assert deliver_outbox(settings, factory=factory).counts()["delivered"] == 3
    by_event = {b["event"]: b for b in receiver.accepted.values()}
    escalated = by_event["escalated"]
    assert escalated["case"]["id"] == case_id and escalated["reason"] == "lateral movement, call IR"
    assert escalated["actor"] == "analyst-user" and "escalated by analyst-user" in escalated["text"]
    assert by_event["assigned"]["assignee"] == "bob" and by_event["assigned"]["case"]["assignee"] == "bob"
    assert by_event["critical_case"]["case"]["severity"] == "critical"


def test_sla_breach_job_run_twice_notifies_once_per_sla(db_url: str, tmp_path: Path, factory_of: Any) -> None:
    settings = settings_for(
        db_url,
        tmp_path,
        routes={"sla_breach": ["webhook"]},
        webhook_url="http://127.0.0.1:9/hook",
        sla_acknowledge_seconds={"critical": 900},
        sla_decide_seconds={"critical": 3600},
    )
    factory = factory_of(settings)
    late = ingest_one(settings, alert("sla-1", rule="late"))  # nobody looked at it for 2 hours
    seen = ingest_one(settings, alert("sla-2", rule="seen"))  # acknowledged, but undecided for 2 hours
    fresh = ingest_one(settings, alert("sla-3", rule="fresh"))  # within its SLAs
    with factory() as s, s.begin():
        for cid in (late, seen):
            case = s.get(Case, cid)
            assert case is not None
            case.created_at = now_utc() - timedelta(hours=2)
        acked = s.get(Case, seen)
        assert acked is not None
        acked.acknowledged_at = now_utc() - timedelta(hours=1, minutes=55)
    run_job(settings, factory)
    run_job(settings, factory)
    breaches = sorted(
        (r.case_id, r.payload["sla"]) for r in rows(factory) if r.payload["event"] == "sla_breach"
    )
    assert breaches == [(late, "acknowledge"), (late, "decide"), (seen, "decide")]
    assert fresh not in {cid for cid, _ in breaches}
    text = slack_message(rows(factory)[0].payload, "https://soc.example/cases/1")["text"]
    assert "SLA breach" in text and "(critical) not" in text


def test_slack_message_format_escapes_attacker_text(sqlite_url: str, tmp_path: Path, factory_of: Any) -> None:
    title = "<!channel> & <https://evil.example|click here> " + "x" * 400
    with webhook_receiver(SECRET) as receiver:
        settings = settings_for(
            sqlite_url,
            tmp_path,
            routes={"critical_case": ["slack"]},
            slack_webhook_url=receiver.url + "/slack",
        )
        factory = factory_of(settings)
        case_id = ingest_one(settings, alert("slack-1", title=title))
        run_job(settings, factory)
        assert deliver_outbox(settings, factory=factory).counts()["delivered"] == 1
        (message,) = receiver.slack
    assert set(message) == {"text", "blocks"}
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;" in message["text"]
    assert "<!channel>" not in json.dumps(message) and "<https://evil" not in json.dumps(message)
    assert len(message["text"]) < 600  # the title is bounded
    section, context = message["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith(f"*New critical case #{case_id}: &lt;!channel&gt;")
    link = f"<https://soc.example/cases/{case_id}|Open case #{case_id}>"
    assert context == {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]}

    # a Slack webhook that is down: retried, and its token never shows in the last error
    token_url = f"http://127.0.0.1:{free_port()}/services/T000/B000/SLACKTOKEN123"
    down = settings_for(
        sqlite_url, tmp_path, routes={"critical_case": ["slack"]}, slack_webhook_url=token_url
    )
    ingest_one(down, alert("slack-2", rule="other"))
    run_job(down, factory)
    assert deliver_outbox(down, factory=factory).counts()["retrying"] == 1
    (pending,) = [r for r in rows(factory) if r.status == "pending"]
    assert pending.last_error and "SLACKTOKEN123" not in pending.last_error and "/***" in pending.last_error


def test_unconfigured_channel_is_skipped_with_its_reason(
    sqlite_url: str, tmp_path: Path, factory_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(sqlite_url, tmp_path, routes={"critical_case": ["email"]})
    settings.writeback.webhook_url = "http://127.0.0.1:9/writeback"  # never used for a notification
    factory = factory_of(settings)
    ingest_one(settings, alert("skip-1"))
    run_job(settings, factory)
    assert deliver_outbox(settings, factory=factory).counts()["skipped"] == 1
    (row,) = rows(factory)
    assert row.status == "skipped" and "no notify.email channel is configured" in (row.last_error or "")


def test_receiver_helper_refuses_stale_timestamps() -> None:
    assert not verify(SECRET, {"x-socflow-timestamp": "1", "x-socflow-signature": "sha256=00"}, b"{}")


def test_cli_notify_pass(sqlite_url: str, tmp_path: Path) -> None:
    env = {"SOCFLOW_DATABASE__URL": sqlite_url}
    off = CliRunner().invoke(cli, ["outbox", "notify"], env=env)
    assert off.exit_code == 2 and "notifications are off" in off.output
    settings = settings_for(sqlite_url, tmp_path)
    ingest_one(settings, alert("cli-1"))
    on = {**env, "SOCFLOW_NOTIFY__ROUTES": '{"critical_case": ["email"]}'}
    get_settings.cache_clear()  # the settings are read once per process
    first = CliRunner().invoke(cli, ["outbox", "notify"], env=on)
    again = CliRunner().invoke(cli, ["outbox", "notify"], env=on)
    assert first.exit_code == 0 and "enqueued=1" in first.output, first.output
    assert again.exit_code == 0 and "enqueued=0" in again.output


def test_cursor_moves_past_settled_events_and_stale_events_never_notify(
    sqlite_url: str, tmp_path: Path, factory_of: Any
) -> None:
    settings = settings_for(sqlite_url, tmp_path, routes={"critical_case": ["email"]}, settle_seconds=0)
    factory = factory_of(settings)
    old = ingest_one(settings, alert("old-1", rule="old"))
    with factory() as s, s.begin():  # its events happened two days ago, before notifications were on
        for event in s.scalars(select(AuditEvent).where(AuditEvent.case_id == old)):
            event.at = now_utc() - timedelta(days=2)
    assert notify_pass(settings, factory=factory).enqueued == 0
    new = ingest_one(settings, alert("new-1", rule="new"))
    first = notify_pass(settings, factory=factory)
    assert first.enqueued == 1 and first.events >= 1
    assert notify_pass(settings, factory=factory).events == 0  # the cursor moved past them
    assert [r.case_id for r in rows(factory)] == [new]


def test_smtp_refusals_4xx_retry_and_5xx_fail(sqlite_url: str, tmp_path: Path, factory_of: Any) -> None:
    with smtp_server() as mailbox:
        settings = settings_for(
            sqlite_url,
            tmp_path,
            routes={"critical_case": ["email"]},
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_from="socflow@soc.example",
            smtp_to="oncall@soc.example",
        )
        factory = factory_of(settings)
        ingest_one(settings, alert("refuse-1"))
        run_job(settings, factory)
        t0 = now_utc()
        mailbox.refuse_rcpt = "450 4.2.1 mailbox busy"
        assert deliver_outbox(settings, factory=factory, clock=lambda: t0).counts()["retrying"] == 1
        (row,) = rows(factory)
        assert row.status == "pending" and "recipients refused (codes [450])" in (row.last_error or "")
        mailbox.refuse_rcpt = "550 5.1.1 no such user"
        later = t0 + timedelta(hours=1)
        assert deliver_outbox(settings, factory=factory, clock=lambda: later).counts()["failed"] == 1
        (row,) = rows(factory)
        assert row.status == "failed" and "codes [550]" in (row.last_error or "") and mailbox.messages == []
