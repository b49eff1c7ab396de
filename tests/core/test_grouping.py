from datetime import UTC, datetime, timedelta

import pytest

from socflow.errors import ConfigError
from socflow.grouping import KeyGrouper
from socflow.schemas import AlertIn
from socflow.store import CaseStore


def _alert(host: str, rule: str = "r1", user: str = "alice") -> AlertIn:
    return AlertIn.model_validate(
        {
            "source": "s",
            "title": "t",
            "severity": "low",
            "rule": {"id": rule},
            "entities": {"hosts": [host], "users": [user]},
        }
    )


def test_same_rule_and_entities_join_within_the_window(factory) -> None:  # type: ignore[no-untyped-def]
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    g = KeyGrouper(["rule", "hosts", "users"], 600)
    with factory() as session, session.begin():
        store = CaseStore(session, clock=lambda: now[0])
        first = g.assign(store, _alert("WS1"), actor="t")
        assert first.created and first.reason.startswith("new case")
        same = g.assign(store, _alert("ws1"), actor="t")  # case-insensitive entity match
        assert not same.created and same.case.id == first.case.id and "joined case" in same.reason
        assert g.assign(store, _alert("WS2"), actor="t").created
        assert g.assign(store, _alert("WS1", rule="r2"), actor="t").created
        now[0] += timedelta(seconds=601)
        late = g.assign(store, _alert("WS1"), actor="t")
        assert late.created  # outside the window: a new case
        store.move_case(late.case.id, "closed", actor="t")
        assert g.assign(store, _alert("WS1"), actor="t").created  # closed cases are never joined


def test_key_fields_are_validated_and_keys_bounded() -> None:
    with pytest.raises(ConfigError):
        KeyGrouper(["rule", "colour"], 60)
    g = KeyGrouper(["hosts"], 60)
    assert len(g.key(_alert("h" * 2000))) <= 300
