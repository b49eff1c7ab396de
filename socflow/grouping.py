"""Grouping: which case an incoming alert joins.

``Grouper.assign`` returns the case and the reason it was chosen; the reason is stored on the alert.
The default here is a placeholder, one case per alert; storm grouping replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from socflow.schemas import AlertIn
from socflow.store import CaseStore
from socflow.tables import Case


@dataclass(frozen=True)
class Assignment:
    case: Case
    created: bool
    grouping_key: str | None
    reason: str


class Grouper(Protocol):
    def assign(self, store: CaseStore, alert: AlertIn, *, actor: str) -> Assignment: ...


class OneCasePerAlert:
    """Placeholder grouper: every alert opens its own case."""

    def assign(self, store: CaseStore, alert: AlertIn, *, actor: str) -> Assignment:
        case = store.create_case(title=alert.title, severity=alert.severity, actor=actor)
        return Assignment(case=case, created=True, grouping_key=None, reason="new case: one case per alert")
