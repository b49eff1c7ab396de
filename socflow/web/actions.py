"""What the UI's forms do. Decisions are ``socflow.hitl.Decision``s submitted through
``socflow.decisions.submit_decision``, the one decision path shared with ``POST /api/v1/cases/{id}/decision``,
``socflow approve`` and the test harness (it refuses stale drafts and stores the analyst overrides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from socflow.api.deps import Services
from socflow.auth import Principal
from socflow.decisions import split_ids, submit_decision
from socflow.enums import Verdict
from socflow.errors import ConflictError, InputError
from socflow.hitl import MAX_ITEMS, Action, Decision, ItemChoice, ItemDecision
from socflow.runner import AdvanceResult
from socflow.store import CaseStore


def web_actor(who: Principal) -> str:
    return f"web:{who.name}"


@dataclass
class DecisionForm:
    action: str
    body: str | None = None
    reason: str | None = None
    run_id: str | None = None
    verdict: str | None = None
    techniques: str | None = None
    items: list[str] = field(default_factory=list)  # the proposed actions the form offered
    approved_items: list[str] = field(default_factory=list)  # the ones the analyst checked
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_form(cls, form: Any) -> DecisionForm:
        def text(name: str) -> str | None:
            value = form.get(name)
            if not isinstance(value, str):
                return None
            value = value.replace("\r\n", "\n")
            return value if value.strip() else None

        return cls(
            action=(text("action") or "").strip(),
            body=text("body"),
            reason=text("reason"),
            run_id=(text("run_id") or "").strip() or None,
            verdict=(text("verdict") or "").strip() or None,
            techniques=text("techniques"),
            items=_ids(form, "item"),
            approved_items=_ids(form, "approve_item"),
        )

    def item_decisions(self) -> list[ItemDecision]:
        """One sub-decision per offered action: approve when checked, decline otherwise."""
        approved = set(self.approved_items)
        return [
            ItemDecision(item_id=i, choice=ItemChoice.approve if i in approved else ItemChoice.decline)
            for i in dict.fromkeys(self.items)
        ]


def _ids(form: Any, name: str) -> list[str]:
    values = form.getlist(name) if hasattr(form, "getlist") else []
    return [v.strip()[:100] for v in values if isinstance(v, str) and v.strip()][:MAX_ITEMS]


def parse_verdict(raw: str | None) -> Verdict | None:
    if not raw:
        return None
    try:
        return Verdict(raw)
    except ValueError:
        raise InputError(f"unknown verdict {raw[:40]!r}", field="verdict") from None


def decide(svc: Services, case_id: int, form: DecisionForm, who: Principal) -> AdvanceResult:
    """Validate the form and the overrides, submit the decision (``submit_decision`` refuses a stale
    draft), then store the overrides as analyst labels."""
    if form.action not in Action.__members__:
        raise InputError(f"choose {', '.join(a.value for a in Action)}", field="action")
    action = Action(form.action)
    try:
        decision = Decision(
            action=action,
            user=who.name,
            body=form.body if action is Action.edit else None,
            reason=form.reason,
            verdict=parse_verdict(form.verdict),
            techniques=split_ids(form.techniques),
            items=form.item_decisions() if action in (Action.approve, Action.edit) else [],
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or (
            "body" if action is Action.edit else "reason"
        )
        raise InputError(str(err.get("msg", "invalid")).removeprefix("Value error, "), field=where) from None
    result = submit_decision(svc.runner, case_id, decision, run_id=form.run_id)
    if not result.advanced:
        raise ConflictError(f"run {result.run_id} was already decided")
    return result


def assign_to_me(svc: Services, case_id: int, who: Principal) -> None:
    with svc.factory() as session, session.begin():
        CaseStore(session).update_case(case_id, actor=web_actor(who), assignee=who.name)
