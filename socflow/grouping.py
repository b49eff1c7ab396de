"""Grouping: which case an incoming alert joins, and why.

``KeyGrouper`` (the default) builds a grouping key from the rule and the alert's primary entities
(``SOCFLOW_GROUPING__KEY_FIELDS``) and joins the newest open case with that key opened within
``SOCFLOW_GROUPING__WINDOW_SECONDS``; otherwise it opens a new case. An alert storm (one rule firing
thousands of times on one host) becomes one case and costs one model run. The reason is stored on
the alert, so an analyst sees why each alert joined its case.

Concurrent ingesters (several API processes, a connector, a worker) must not both open a case for one
key. On PostgreSQL, ``assign`` first takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``)
so that "find the open case, else create one" is atomic across processes; the lock is released when the
ingest transaction commits, after which the next ingester sees the committed case. It is one lock for all
keys, not one per key: an ingest transaction groups a chunk of alerts with many keys, and per-key locks
taken in arrival order by two ingesters would deadlock. On SQLite the ingest transaction's write lock
serialises ingesters already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from socflow.errors import ConfigError
from socflow.schemas import AlertIn
from socflow.store import CaseStore
from socflow.tables import Case

KEY_FIELDS = ("rule", "source", "hosts", "users", "ips", "processes", "domains", "hashes")
MAX_KEY = 300
#: The advisory lock id of case grouping (the first 8 bytes of sha256("socflow:grouping"), signed).
GROUPING_LOCK_ID = int.from_bytes(hashlib.sha256(b"socflow:grouping").digest()[:8], "big", signed=True)


def lock_grouping(session: Session) -> None:
    """Hold the grouping lock until ``session``'s transaction ends (PostgreSQL; a no-op elsewhere).

    Re-entrant within one transaction; taken before the open-case lookup so that two ingesters never
    both miss the case the other is creating.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": GROUPING_LOCK_ID})


@dataclass(frozen=True)
class Assignment:
    case: Case
    created: bool
    grouping_key: str | None
    reason: str


class Grouper(Protocol):
    def assign(self, store: CaseStore, alert: AlertIn, *, actor: str) -> Assignment: ...


class OneCasePerAlert:
    """Every alert opens its own case (for tests and for teams that want no grouping)."""

    REASON = "new case: one case per alert"

    def assign(self, store: CaseStore, alert: AlertIn, *, actor: str) -> Assignment:
        case = store.create_case(title=alert.title, severity=alert.severity, actor=actor)
        return Assignment(case=case, created=True, grouping_key=None, reason=self.REASON)


class KeyGrouper:
    def __init__(self, key_fields: Sequence[str], window_seconds: int) -> None:
        unknown = [f for f in key_fields if f not in KEY_FIELDS]
        if unknown or not key_fields:
            raise ConfigError(
                f"grouping key fields {unknown or '[]'} invalid; choose from {', '.join(KEY_FIELDS)}"
            )
        self.key_fields = tuple(key_fields)
        self.window = timedelta(seconds=window_seconds)

    def key(self, alert: AlertIn) -> str:
        parts = []
        for f in self.key_fields:
            if f == "rule":
                value = alert.rule.id or alert.rule.name or alert.title
            elif f == "source":
                value = alert.source
            else:
                value = ",".join(sorted({v.lower() for v in getattr(alert.entities, f)}))
            parts.append(f"{f}={value}")
        key = "|".join(parts)
        if len(key) > MAX_KEY:
            key = key[: MAX_KEY - 20] + "#" + hashlib.sha256(key.encode()).hexdigest()[:19]
        return key

    @property
    def fields(self) -> str:
        return "+".join(self.key_fields)

    def joined_reason(self, case_id: int, key: str) -> str:
        seconds = int(self.window.total_seconds())
        return f"joined case {case_id}: same {self.fields} ({key}) within {seconds}s"

    def new_reason(self, key: str) -> str:
        seconds = int(self.window.total_seconds())
        return f"new case: no open case with the same {self.fields} ({key}) in the last {seconds}s"

    def assign(self, store: CaseStore, alert: AlertIn, *, actor: str) -> Assignment:
        key = self.key(alert)
        lock_grouping(store.session)
        case = store.find_open_case(key, since=store.clock() - self.window)
        if case is not None:
            return Assignment(
                case=case, created=False, grouping_key=key, reason=self.joined_reason(case.id, key)
            )
        case = store.create_case(title=alert.title, severity=alert.severity, actor=actor, grouping_key=key)
        return Assignment(case=case, created=True, grouping_key=key, reason=self.new_reason(key))
