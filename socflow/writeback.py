"""Write-back targets: where a decided case's source alerts are updated in their own system.

Each target sends one outbox message (``socflow.outbox``) over ``socflow.http`` and raises
``RemoteError`` when it could not (``retryable`` says whether a later try may work):

- ``ElasticBulkTarget``: Elastic Security / OpenSearch alert documents, ``POST /_bulk`` partial-document
  updates by ``_index``/``_id`` (``kibana.alert.workflow_status`` plus the socflow case link, analyst and
  comment). Per-item errors are checked: 429/5xx items make the message retryable, others fail it.
- ``KibanaSignalsTarget``: when a Kibana URL is configured, the detection-engine API
  ``POST /api/detection_engine/signals/status`` with ``{"signal_ids": [...], "status": ...}`` and the
  ``kbn-xsrf`` header (Kibana updates the alert documents itself).
- ``SplunkNotableTarget``: Splunk ES ``POST /services/notable_update`` (form fields ``ruleUIDs``,
  ``status`` as ES status id, ``newOwner``, ``comment``); ``{"success": false}`` is an error.
- ``WebhookTarget``: anything else; a JSON ``POST`` signed with HMAC-SHA256 over ``<timestamp>.<body>``
  (``X-Socflow-Signature: sha256=<hex>``, ``X-Socflow-Timestamp``) with the delivery id in
  ``X-Socflow-Delivery``, so receivers verify the sender and drop repeats.

Delivery is at least once; every target's update is idempotent (setting a status twice leaves it set), and
webhook receivers drop repeats by delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from socflow.http import HttpAuth, HttpClient, RemoteHTTPError, RemoteUnavailable, RetryPolicy
from socflow.settings import WritebackSettings

#: Splunk ES notable status ids: 1 new, 2 in progress, 3 pending, 4 resolved, 5 closed.
SPLUNK_STATUS = {"acknowledged": "2", "closed": "5"}
KIBANA_PATH = "/api/detection_engine/signals/status"
NOTABLE_UPDATE_PATH = "/services/notable_update"
ONE_TRY = RetryPolicy(attempts=1)  # the outbox retries, with its own backoff


class Target(Protocol):
    kind: str

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def comment(payload: Mapping[str, Any], case_url: str) -> str:
    """The comment every target carries: the socflow case link, the decision and the analyst."""
    text = (
        f"socflow case {payload.get('case_id')}: {payload.get('action')} by {payload.get('analyst')}"
        f" (verdict {payload.get('verdict') or 'none'}) - {case_url}"
    )
    reason = payload.get("reason")
    return f"{text}\n{reason}" if reason else text


def _auth(settings: WritebackSettings) -> HttpAuth:
    return HttpAuth(
        username=settings.username,
        password=settings.password.get_secret_value(),
        api_key=settings.api_key.get_secret_value(),
        bearer_token=settings.token.get_secret_value(),
        verify=settings.verify,
        ca_bundle=settings.ca_bundle,
    )


class _Base:
    kind = "base"

    def __init__(
        self, url: str, settings: WritebackSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.http = HttpClient(
            url,
            name=f"write-back {self.kind}",
            auth=_auth(settings),
            timeout=settings.timeout,
            retry=ONE_TRY,
            transport=transport,
        )

    def case_url(self, payload: Mapping[str, Any]) -> str:
        return self.settings.case_url.replace("{case_id}", str(payload.get("case_id")))

    def close(self) -> None:
        self.http.close()


class ElasticBulkTarget(_Base):
    kind = "elastic"

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        doc = {
            "kibana.alert.workflow_status": payload["status"],
            "kibana.alert.workflow_status_updated_at": now,
            "socflow.case_url": self.case_url(payload),
            "socflow.analyst": payload.get("analyst"),
            "socflow.comment": comment(payload, self.case_url(payload)),
        }
        lines: list[str] = []
        for ref in payload.get("refs") or []:
            lines.append(json.dumps({"update": {"_index": ref["index"], "_id": ref["id"]}}))
            lines.append(json.dumps({"doc": doc}))
        if not lines:
            return
        answer = self.http.json(
            "POST",
            "/_bulk",
            content=("\n".join(lines) + "\n").encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        if not isinstance(answer, dict) or not answer.get("errors"):
            return
        failures = [
            item.get("update") or {}
            for item in answer.get("items") or []
            if isinstance(item, dict) and (item.get("update") or {}).get("error")
        ]
        retry = [f for f in failures if int(f.get("status") or 0) in (429, 500, 502, 503, 504)]
        first = failures[0] if failures else {}
        why = (
            f"{len(failures)} of {len(lines) // 2} updates failed; "
            f"first: {first.get('_id')} HTTP {first.get('status')}"
        )
        if retry:
            raise RemoteUnavailable(f"{self.http.name}: {why}")
        if failures:
            raise RemoteHTTPError(f"{self.http.name}: {why}", status_code=int(first.get("status") or 0))


class KibanaSignalsTarget(_Base):
    kind = "kibana"

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        ids = [ref.get("uuid") or ref["id"] for ref in payload.get("refs") or []]
        if not ids:
            return
        self.http.post(
            KIBANA_PATH,
            json={"signal_ids": ids, "status": payload["status"]},
            headers={"kbn-xsrf": "socflow"},
        )


class SplunkNotableTarget(_Base):
    kind = "splunk"

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        uids = [str(r) for r in payload.get("refs") or []]
        if not uids:
            return
        form: dict[str, str | list[str]] = {
            "ruleUIDs": uids,
            "status": SPLUNK_STATUS[payload["status"]],
            "comment": comment(payload, self.case_url(payload)),
            "output_mode": "json",
        }
        if payload.get("analyst"):
            form["newOwner"] = str(payload["analyst"])
        answer = self.http.json("POST", NOTABLE_UPDATE_PATH, data=form)
        if not isinstance(answer, dict) or answer.get("success") is not True:
            message = str(answer.get("message") if isinstance(answer, dict) else answer)[:200]
            raise RemoteHTTPError(f"{self.http.name}: notable_update refused: {self.http.redact(message)}")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookTarget(_Base):
    kind = "webhook"

    def deliver(self, delivery_id: str, payload: Mapping[str, Any]) -> None:
        secret = self.settings.webhook_secret.get_secret_value()
        if not secret:
            raise RemoteHTTPError(f"{self.http.name}: SOCFLOW_WRITEBACK__WEBHOOK_SECRET is not set")
        body = json.dumps(
            {
                "delivery_id": delivery_id,
                "case_url": self.case_url(payload),
                "comment": comment(payload, self.case_url(payload)),
                **payload,
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
                "X-Socflow-Signature": sign(secret, timestamp, body),
            },
        )


def build_targets(
    settings: WritebackSettings, *, transport: httpx.BaseTransport | None = None
) -> dict[str, Target]:
    """The configured targets by outbox target kind (``elastic``, ``splunk``, ``webhook``)."""
    targets: dict[str, Target] = {}
    if settings.kibana_url:
        targets["elastic"] = KibanaSignalsTarget(settings.kibana_url, settings, transport=transport)
    elif settings.elastic_url:
        targets["elastic"] = ElasticBulkTarget(settings.elastic_url, settings, transport=transport)
    if settings.splunk_url:
        targets["splunk"] = SplunkNotableTarget(settings.splunk_url, settings, transport=transport)
    if settings.webhook_url:
        targets["webhook"] = WebhookTarget(settings.webhook_url, settings, transport=transport)
    return targets
