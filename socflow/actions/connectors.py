"""Action connectors: what executes an approved action.

* ``WebhookConnector``: a JSON POST signed like the write-back webhook (``X-Socflow-Signature:
  sha256=<hex>`` = HMAC-SHA256 over ``<timestamp>.<body>``, ``X-Socflow-Timestamp``, and the delivery
  id in ``X-Socflow-Delivery`` so receivers drop repeats).
* ``CommandConnector``: a local program run with list arguments and no shell:
  ``argv + ["--", <action>, <target>]``; the target was validated by its type first, and ``--`` ends the
  options, so a value can never become an option or a shell command.
* ``DefenderConnector``: Microsoft Defender for Endpoint machine actions, from the documented request
  shape: the machine is found by ``GET {base}/api/machines?$filter=computerDnsName eq '<host>'``, then
  ``POST {base}/api/machines/{id}/isolate`` with ``{"Comment": ..., "IsolationType": "Full"}`` (or
  ``/unisolate`` with ``{"Comment": ...}``), with an Azure AD bearer token.

Each returns an ``ActionResult`` (a one-line summary and a reference, e.g. the Defender machine action
id); a failure raises ``RemoteError`` (``retryable`` when the target is down or busy).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from socflow.actions.catalog import (
    ActionId,
    CommandConnectorConfig,
    DefenderConnectorConfig,
    TargetType,
    WebhookConnectorConfig,
    validate_target,
)
from socflow.http import HttpAuth, HttpClient, RemoteError, RemoteHTTPError, RemoteUnavailable, RetryPolicy
from socflow.writeback import sign

MAX_OUTPUT = 500


@dataclass(frozen=True)
class ActionRequest:
    """One approved action to execute (built from a stored ``case_actions`` row)."""

    delivery_id: str
    case_id: int
    action: ActionId
    target_type: TargetType
    target: str
    approved_by: str
    comment: str


@dataclass(frozen=True)
class ActionResult:
    summary: str  # one line, shown under "Actions taken"
    reference: str = ""  # the remote system's id for what it did, when it gives one


class ActionConnector(Protocol):
    kind: str

    def execute(self, request: ActionRequest) -> ActionResult: ...


class WebhookConnector:
    kind = "webhook"

    def __init__(self, config: WebhookConnectorConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.transport = transport

    def execute(self, request: ActionRequest) -> ActionResult:
        secret = os.environ.get(self.config.secret_env, "")
        if not secret:
            raise RemoteHTTPError(f"action webhook: the secret variable {self.config.secret_env} is not set")
        body = json.dumps(
            {
                "delivery_id": request.delivery_id,
                "case_id": request.case_id,
                "action": request.action.value,
                "target_type": request.target_type.value,
                "target": request.target,
                "approved_by": request.approved_by,
                "comment": request.comment,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        with HttpClient(
            self.config.url,
            name="action webhook",
            timeout=self.config.timeout,
            retry=RetryPolicy(attempts=1),
            transport=self.transport,
        ) as http:
            response = http.post(
                "",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Socflow-Delivery": request.delivery_id,
                    "X-Socflow-Timestamp": timestamp,
                    "X-Socflow-Signature": sign(secret, timestamp, body),
                },
            )
        reference = ""
        try:
            answer = response.json()
            if isinstance(answer, dict) and isinstance(answer.get("id"), str | int):
                reference = str(answer["id"])[:200]
        except ValueError:
            pass
        return ActionResult(f"webhook accepted (HTTP {response.status_code})", reference)


class CommandConnector:
    kind = "command"

    def __init__(self, config: CommandConnectorConfig) -> None:
        self.config = config

    def argv(self, request: ActionRequest) -> list[str]:
        """The program's argument list: configured argv, ``--``, the action, the validated target."""
        target = validate_target(request.target_type, request.target)
        return [*self.config.argv, "--", request.action.value, target]

    def execute(self, request: ActionRequest) -> ActionResult:
        args = self.argv(request)
        try:
            done = subprocess.run(  # list arguments, no shell: the target is one argv entry
                args,
                shell=False,
                capture_output=True,
                text=True,
                timeout=self.config.timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise RemoteHTTPError(f"action command: {args[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise RemoteUnavailable(f"action command: {args[0]} ran past {self.config.timeout:g}s") from None
        out = " ".join((done.stdout or "").split())[:MAX_OUTPUT]
        if done.returncode != 0:
            err = " ".join((done.stderr or "").split())[:MAX_OUTPUT]
            raise RemoteHTTPError(f"action command: {args[0]} exited {done.returncode}: {err or out}")
        return ActionResult(f"command {os.path.basename(args[0])} exited 0" + (f": {out}" if out else ""))


class DefenderConnector:
    """Microsoft Defender for Endpoint: isolate (``isolate_host``) or release (``release_host``)."""

    kind = "defender"

    def __init__(self, config: DefenderConnectorConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.transport = transport

    def execute(self, request: ActionRequest) -> ActionResult:
        token = os.environ.get(self.config.token_env, "")
        if not token:
            raise RemoteHTTPError(f"defender: the token variable {self.config.token_env} is not set")
        host = validate_target(TargetType.hostname, request.target)
        with HttpClient(
            self.config.base_url,
            name="defender",
            auth=HttpAuth(bearer_token=token),
            timeout=self.config.timeout,
            retry=RetryPolicy(attempts=2),
            transport=self.transport,
        ) as http:
            found = http.json("GET", "/api/machines", params={"$filter": f"computerDnsName eq '{host}'"})
            machines = found.get("value") if isinstance(found, Mapping) else None
            if not isinstance(machines, list) or not machines or not isinstance(machines[0], Mapping):
                raise RemoteHTTPError(f"defender: no machine named {host}")
            machine_id = str(machines[0].get("id", ""))
            if not machine_id or not all(c.isalnum() for c in machine_id):
                raise RemoteHTTPError(f"defender: machine {host} has no usable id")
            body: dict[str, Any] = {"Comment": request.comment[:1000]}
            if request.action is ActionId.isolate_host:
                verb = "isolate"
                body["IsolationType"] = self.config.isolation_type
            elif request.action is ActionId.release_host:
                verb = "unisolate"
            else:
                raise RemoteHTTPError(f"defender: {request.action.value} is not a machine action")
            answer = http.json("POST", f"/api/machines/{machine_id}/{verb}", json=body)
        action_id = str(answer.get("id", "")) if isinstance(answer, Mapping) else ""
        status = str(answer.get("status", "")) if isinstance(answer, Mapping) else ""
        return ActionResult(
            f"Defender machine action {verb} on machine {machine_id}: {status or 'submitted'}",
            action_id[:200],
        )


def build_connector(config: Any, *, transport: httpx.BaseTransport | None = None) -> ActionConnector:
    if isinstance(config, WebhookConnectorConfig):
        return WebhookConnector(config, transport=transport)
    if isinstance(config, CommandConnectorConfig):
        return CommandConnector(config)
    if isinstance(config, DefenderConnectorConfig):
        return DefenderConnector(config, transport=transport)
    raise RemoteError(f"unknown action connector {type(config).__name__}")
