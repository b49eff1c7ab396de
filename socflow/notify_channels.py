"""Notification channels: the outbox targets ``notify.slack``, ``notify.email`` and ``notify.webhook``
(``socflow.notify`` adds their rows; ``socflow.outbox.deliver_outbox`` sends them and retries).

Every message is rendered from the outbox row's payload (``event``, ``case``, event details). Case titles,
reasons and names come from alerts and people: they were bounded and stripped of control characters when
the row was written, and each channel escapes them for its own syntax.

- ``SlackTarget``: a Slack incoming webhook, ``POST`` of ``{"text": <summary>, "blocks": [section (mrkdwn:
  the summary in bold, then the details), context (severity, status, assignee, a link to the case)]}``.
  ``&``, ``<`` and ``>`` in any text from a case are escaped (``&amp;``, ``&lt;``, ``&gt;``), so a title
  cannot ping ``<!channel>`` or forge a link. The webhook URL is a secret and never appears in errors.
- ``EmailTarget``: one ``email.message.EmailMessage`` per row over SMTP (``smtplib``; STARTTLS and login
  when configured). The subject has no CR or LF (no header injection); ``X-Socflow-Delivery`` carries the
  delivery id. Connection failures and 4xx SMTP replies are retried; 5xx replies fail the row.
- ``SignedWebhookTarget``: a JSON ``POST`` of ``{"delivery_id", "event", "text", "case_url", "case",
  ...details}`` signed like the write-back webhook: ``X-Socflow-Signature: sha256=<hex HMAC-SHA256 with the
  secret over "<timestamp>.<body>">``, ``X-Socflow-Timestamp``, ``X-Socflow-Delivery`` (receivers drop
  repeats by it) and ``X-Socflow-Event``.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from socflow.http import HttpClient, RemoteError, RemoteHTTPError, RemoteUnavailable
from socflow.settings import NotifySettings
from socflow.writeback import ONE_TRY, Target, sign

MAX_SUBJECT = 200
MAX_ERROR = 500


@dataclass(frozen=True)
class Rendered:
    summary: str  # one line
    details: list[str]  # more lines


def _duration(seconds: Any) -> str:
    total = int(float(seconds or 0))
    hours, rest = divmod(total, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m"


def one_line(text: Any, limit: int = MAX_SUBJECT) -> str:
    """``text`` on one line (CR, LF and other line breaks become spaces), at most ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render(payload: Mapping[str, Any]) -> Rendered:
    """The plain-text summary and details of a notification payload (unescaped)."""
    case = payload.get("case") or {}
    ref = f"case #{case.get('id')}"
    title = case.get("title") or ""
    event = payload.get("event")
    details: list[str] = []
    if event == "escalated":
        summary = f"{ref} escalated by {payload.get('actor') or 'someone'}: {title}"
        if payload.get("reason"):
            details.append(f"Reason: {payload['reason']}")
    elif event == "assigned":
        summary = f"{ref} assigned to {payload.get('assignee')} by {payload.get('actor')}: {title}"
    elif event == "critical_case":
        summary = f"New critical {ref}: {title}"
    elif event == "sla_breach":
        what = "acknowledged" if payload.get("sla") == "acknowledge" else "decided"
        summary = (
            f"SLA breach: {ref} ({case.get('severity')}) not {what} within "
            f"{_duration(payload.get('sla_seconds'))}: {title}"
        )
        details.append(f"Breached at {payload.get('breached_at')}")
    else:
        summary = f"{ref}: {event}: {title}"
    details.append(
        f"Severity {case.get('severity')}, status {case.get('status')}, "
        f"assignee {case.get('assignee') or 'none'}, verdict {case.get('verdict') or 'none'}"
    )
    return Rendered(one_line(summary, 500), details)


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters escaped (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: Mapping[str, Any], case_url: str) -> dict[str, Any]:
    """The Slack incoming-webhook body of a notification (documented in docs/notifications.md)."""
    msg = render(payload)
    summary = slack_escape(msg.summary)
    body = "\n".join(slack_escape(line) for line in msg.details)
    case_id = (payload.get("case") or {}).get("id")
    link = f"<{case_url}|Open case #{case_id}>"  # case_url is from settings, not from the case
    return {
        "text": summary,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*\n{body}"[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
        ],
    }


def case_url_of(template: str, payload: Mapping[str, Any]) -> str:
    return template.replace("{case_id}", str((payload.get("case") or {}).get("id")))


class SlackTarget:
    kind = "notify.slack"

    def __init__(
        self, settings: NotifySettings, case_url: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = settings.slack_webhook_url.get_secret_value()
        self.case_url = case_url
        self.http = HttpClient(
            self.url, name="slack", timeout=settings.webhook_timeout, retry=ONE_TRY, transport=transport
        )

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        try:
            self.http.post("", json=slack_message(payload, case_url_of(self.case_url, payload)))
        except RemoteError as exc:  # the webhook URL's path is Slack's token: keep it out of last_error
            path = httpx.URL(self.url).path
            message = str(exc).replace(path, "/***") if path not in ("", "/") else str(exc)
            raise type(exc)(message, status_code=exc.status_code) from None

    def close(self) -> None:
        self.http.close()


def email_message(
    payload: Mapping[str, Any], *, sender: str, recipients: list[str], case_url: str, delivery_id: str
) -> EmailMessage:
    """The email of a notification: a one-line subject (no CR/LF), plain-text body."""
    msg = render(payload)
    message = EmailMessage()
    message["Subject"] = one_line(f"[socflow] {msg.summary}", MAX_SUBJECT)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["X-Socflow-Delivery"] = delivery_id
    message["X-Socflow-Event"] = one_line(payload.get("event"), 40)
    message.set_content("\n".join([msg.summary, "", *msg.details, "", case_url, ""]))
    return message


class EmailTarget:
    kind = "notify.email"

    def __init__(self, settings: NotifySettings, case_url: str) -> None:
        self.settings = settings
        self.case_url = case_url

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        cfg = self.settings
        if not cfg.smtp_from or not cfg.smtp_to:
            raise RemoteHTTPError("email: SOCFLOW_NOTIFY__SMTP_FROM and SMTP_TO must be set")
        message = email_message(
            payload,
            sender=cfg.smtp_from,
            recipients=list(cfg.smtp_to),
            case_url=case_url_of(self.case_url, payload),
            delivery_id=delivery_id,
        )
        where = f"email: SMTP {cfg.smtp_host}:{cfg.smtp_port}"
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout) as smtp:
                if cfg.smtp_starttls:
                    smtp.starttls()
                user = cfg.smtp_user.get_secret_value()
                if user:
                    smtp.login(user, cfg.smtp_password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            cls = RemoteUnavailable if codes and all(400 <= c < 500 for c in codes) else RemoteHTTPError
            raise cls(f"{where}: recipients refused (codes {sorted(set(codes))})") from None
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
            cls = RemoteUnavailable if 400 <= exc.smtp_code < 500 else RemoteHTTPError
            why = f"{where}: {exc.smtp_code} {one_line(reply, MAX_ERROR)}"
            raise cls(why, status_code=exc.smtp_code) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, disconnected
            raise RemoteUnavailable(f"{where}: {type(exc).__name__}: {one_line(exc, MAX_ERROR)}") from None

    def close(self) -> None:
        return None


class SignedWebhookTarget:
    kind = "notify.webhook"

    def __init__(
        self, settings: NotifySettings, case_url: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.secret = settings.webhook_secret.get_secret_value()
        self.case_url = case_url
        self.http = HttpClient(
            settings.webhook_url,
            name="notify webhook",
            timeout=settings.webhook_timeout,
            retry=ONE_TRY,
            transport=transport,
        )

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        if not self.secret:
            raise RemoteHTTPError("notify webhook: SOCFLOW_NOTIFY__WEBHOOK_SECRET is not set")
        body = json.dumps(
            {
                **payload,
                "delivery_id": delivery_id,
                "text": render(payload).summary,
                "case_url": case_url_of(self.case_url, payload),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        self.http.post(
            "",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Socflow-Delivery": delivery_id,
                "X-Socflow-Timestamp": timestamp,
                "X-Socflow-Signature": sign(self.secret, timestamp, body),
                "X-Socflow-Event": one_line(payload.get("event"), 40),
            },
        )

    def close(self) -> None:
        self.http.close()


def build_notify_targets(
    settings: NotifySettings, case_url: str, *, transport: httpx.BaseTransport | None = None
) -> dict[str, Target]:
    """The configured channels by outbox target kind (a channel without its URL or host is left out: its
    rows are skipped with that reason)."""
    targets: dict[str, Target] = {}
    if settings.slack_webhook_url.get_secret_value():
        targets[SlackTarget.kind] = SlackTarget(settings, case_url, transport=transport)
    if settings.smtp_host:
        targets[EmailTarget.kind] = EmailTarget(settings, case_url)
    if settings.webhook_url:
        targets[SignedWebhookTarget.kind] = SignedWebhookTarget(settings, case_url, transport=transport)
    return targets
