"""Human in the loop: the one approval primitive every door and every workflow shares.

* ``Action``: what an analyst can do with a drafted note (approve, edit, reject, escalate).
* ``ApprovalRequest``: what an approval interrupt carries (the note kind, its revision, allowed actions,
  and optional ``items`` an analyst approves or declines one by one, e.g. proposed response actions).
* ``Decision``: the analyst's validated decision (the CLI, the API, the web UI and the test harness build
  it; ``socflow.decisions.submit_decision`` checks it and resumes the run with ``Decision.payload()``).
* ``await_approval``: the core approval node; it calls ``interrupt()`` and nothing else.
* ``request_approval``: the state update a drafting node returns once its draft is stored.
* ``apply_note_decision``: what each action does to the note and the case, in the node's one write
  transaction, with the one-redraft-then-manual-note rule.
* ``route_after_decision``: where the graph goes after the decision (end, redraft, or wait for a manual
  note).

A workflow's approval part is: ``request_approval`` in its drafting node, ``await_approval`` as a node,
``apply_note_decision`` in its finalizing node and ``route_after_decision`` as that node's router.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, TypeVar, cast

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from socflow.enums import CASE_TRANSITIONS, DEFAULT_NOTE_KIND, CaseStatus, NoteStatus, Verdict
from socflow.sdk import RunContext
from socflow.steps import StepTransaction

MAX_DRAFTS = 2  # the first draft and one redraft carrying the analyst's reason; then a person writes it
MAX_OVERRIDE_TECHNIQUES = 20
MAX_ITEMS = 100


class Action(StrEnum):
    approve = "approve"
    edit = "edit"
    reject = "reject"
    escalate = "escalate"


ALL_ACTIONS: tuple[Action, ...] = tuple(Action)
MANUAL_ACTIONS: tuple[Action, ...] = (Action.edit, Action.escalate)  # after the redraft was rejected too


class ItemChoice(StrEnum):
    approve = "approve"
    decline = "decline"


class Outcome(StrEnum):
    """What a decision did (``state["outcome"]``)."""

    approved = "approved"
    closed = "closed"
    escalated = "escalated"
    rejected = "rejected"
    auto_closed = "auto_closed"


# -- what crosses the interrupt (graph state: JSON-plain) ---------------------------------------------
class ApprovalItem(TypedDict):
    """One thing inside a request the analyst approves or declines on its own (e.g. a response action)."""

    item_id: str
    summary: str


class ApprovalRequest(TypedDict, total=False):
    kind: str  # the note kind the decision is about
    case_id: int
    run_id: str
    note_revision: int
    evidence_ids: list[str]
    allowed_actions: list[str]
    manual: bool  # the redraft was rejected: only a person's note (edit) or escalation remains
    verdict: str | None
    confidence: float | None
    techniques: list[str]
    findings: list[str]
    items: list[ApprovalItem]


class ItemDecisionPayload(TypedDict):
    item_id: str
    choice: str
    comment: str | None


class DecisionPayload(TypedDict):
    """What the approval node receives on resume (``Decision.payload()``)."""

    action: str
    user: str
    body: str | None
    reason: str | None
    items: list[ItemDecisionPayload]


class ApprovalState(TypedDict, total=False):
    """The approval part of a drafting workflow's state; the workflow's state class extends it."""

    case_id: int
    drafts_made: int
    reject_reason: str | None
    manual_only: bool
    approval_request: ApprovalRequest
    decision: DecisionPayload
    outcome: str


A = TypeVar("A", bound=ApprovalState)


# -- the analyst's decision (validated at every door) -------------------------------------------------
ItemId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]


class ItemDecision(BaseModel):
    """The analyst's choice on one item of the request, keyed by its id."""

    model_config = ConfigDict(extra="forbid")

    item_id: ItemId
    choice: ItemChoice
    comment: str | None = Field(default=None, min_length=1, max_length=2000)


class DecisionFields(BaseModel):
    """What an analyst decides (every door's request body extends it); ``Decision`` adds who decided."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    body: str | None = Field(default=None, min_length=1, max_length=64 * 1024)
    reason: str | None = Field(default=None, min_length=1, max_length=4000)
    verdict: Verdict | None = None
    techniques: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=MAX_OVERRIDE_TECHNIQUES
    )
    items: list[ItemDecision] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _needs(self) -> DecisionFields:
        if self.action is Action.edit and not self.body:
            raise ValueError("an edit needs the edited note body")
        if self.action in (Action.reject, Action.escalate) and not self.reason:
            raise ValueError(f"{self.action.value} needs a reason")
        ids = [i.item_id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError("each item is decided once")
        return self


class Decision(DecisionFields):
    """An analyst's decision, with optional overrides (verdict, techniques) stored as analyst labels."""

    user: str = Field(min_length=1, max_length=200)

    def payload(self) -> DecisionPayload:
        """What the run resumes with (the overrides are stored as labels, not sent to the graph)."""
        return {
            "action": self.action.value,
            "user": self.user,
            "body": self.body if self.action is Action.edit else None,
            "reason": self.reason,
            "items": [
                {"item_id": i.item_id, "choice": i.choice.value, "comment": i.comment} for i in self.items
            ],
        }


def allowed_actions(request: ApprovalRequest | dict[str, object] | None) -> list[Action]:
    """The actions a pending request offers (all of them when it does not say)."""
    raw = (request or {}).get("allowed_actions")
    if not isinstance(raw, list) or not raw:
        return list(ALL_ACTIONS)
    return [Action(a) for a in raw if a in Action.__members__]


def note_kind_of(request: ApprovalRequest | dict[str, object] | None) -> str:
    kind = (request or {}).get("kind")
    return kind if isinstance(kind, str) and kind else DEFAULT_NOTE_KIND


def missing_items(request: ApprovalRequest | dict[str, object] | None, decision: Decision) -> list[str]:
    """Item ids of the request the decision leaves undecided (approving needs a choice on each)."""
    items = (request or {}).get("items")
    wanted = [str(i.get("item_id")) for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    given = {i.item_id for i in decision.items}
    return [i for i in wanted if i not in given]


def unknown_items(request: ApprovalRequest | dict[str, object] | None, decision: Decision) -> list[str]:
    items = (request or {}).get("items")
    wanted = (
        {str(i.get("item_id")) for i in items if isinstance(i, dict)} if isinstance(items, list) else set()
    )
    return [i.item_id for i in decision.items if i.item_id not in wanted]


# -- the graph side ----------------------------------------------------------------------------------
def _drafts(state: ApprovalState) -> int:
    return state.get("drafts_made", 0)


def request_approval(
    state: A,
    ctx: RunContext,
    *,
    note_kind: str,
    revision: int,
    evidence_ids: Sequence[str] = (),
    verdict: str | None = None,
    confidence: float | None = None,
    techniques: Sequence[str] = (),
    findings: Sequence[str] = (),
    items: Sequence[ApprovalItem] = (),
) -> A:
    """The state update of a drafting node whose draft (``revision`` of ``note_kind``) is stored."""
    case_id = state["case_id"]
    request: ApprovalRequest = {
        "kind": note_kind,
        "case_id": case_id,
        "run_id": ctx.run_id,
        "note_revision": revision,
        "evidence_ids": list(evidence_ids),
        "allowed_actions": [a.value for a in ALL_ACTIONS],
        "techniques": list(techniques),
        "findings": list(findings),
    }
    if verdict is not None:
        request |= {"verdict": verdict, "confidence": confidence}
    if items:
        request["items"] = list(items)
    drafts = _drafts(state)
    update: ApprovalState = {"drafts_made": drafts + 1, "approval_request": request}
    return cast(A, update)  # a partial update of the workflow's own state


def await_approval(state: ApprovalState, runtime: Runtime[RunContext]) -> ApprovalState:
    """The core approval node: it calls ``interrupt()`` and does nothing else (LangGraph re-runs it from
    its top on resume)."""
    decision: DecisionPayload = interrupt(state["approval_request"])
    return {"decision": decision}


def apply_note_decision(
    tx: StepTransaction,
    state: A,
    *,
    note_kind: str,
    actor: str,
    approved_case_status: CaseStatus | None = None,
    case_follows_note: bool = False,
) -> A:
    """Apply ``state["decision"]`` to the note and the case inside the node's write transaction.

    approve / edit: the note is approved (an edit stores the analyst's body as a new revision); the case
    moves to ``approved_case_status`` when given. escalate: the case is escalated (when that move is
    allowed). reject: the note is rejected and the run redrafts once with the reason; a rejected redraft
    leaves only a manual note (edit) or escalation. ``case_follows_note``: the case moves to ``triaging``
    on a reject and back to ``awaiting_approval`` while a manual note is awaited.
    """
    store = tx.store
    case_id = state["case_id"]
    decision = state["decision"]
    user, action, reason = decision["user"], Action(decision["action"]), decision.get("reason")
    update: ApprovalState = {}
    if action in (Action.approve, Action.edit):
        body = decision.get("body") if action is Action.edit else None
        store.decide_note(
            case_id, status=NoteStatus.approved, actor=user, body=body, comment=reason, kind=note_kind
        )
        outcome = Outcome.approved
        if approved_case_status is not None:
            why = "note approved" if action is Action.approve else "note edited and approved"
            store.move_case(case_id, approved_case_status, actor=user, reason=why)
            outcome = Outcome(approved_case_status.value)
    elif action is Action.escalate:
        current = CaseStatus(store.get_case(case_id).status)
        if CaseStatus.escalated in CASE_TRANSITIONS[current]:
            store.move_case(case_id, CaseStatus.escalated, actor=user, reason=reason)
        outcome = Outcome.escalated
    else:
        store.decide_note(case_id, status=NoteStatus.rejected, actor=user, comment=reason, kind=note_kind)
        if case_follows_note:
            store.move_case(case_id, CaseStatus.triaging, actor=user, reason=reason)
        outcome = Outcome.rejected
        update["reject_reason"] = (reason or "")[:500]
        if _drafts(state) >= MAX_DRAFTS:
            request: ApprovalRequest = {
                **state["approval_request"],
                "allowed_actions": [a.value for a in MANUAL_ACTIONS],
                "manual": True,
            }
            update |= {"manual_only": True, "approval_request": request}
            if case_follows_note:
                store.move_case(
                    case_id,
                    CaseStatus.awaiting_approval,
                    actor=actor,
                    reason="draft rejected twice: waiting for a manual note",
                )
    update["outcome"] = outcome.value
    store.record_run_event(
        tx.ctx.run_id,
        f"run.{tx.node}",
        case_id=case_id,
        actor=user,
        data={"outcome": outcome.value, "action": action.value, "items": decision.get("items", [])},
    )
    return cast(A, update)  # a partial update of the workflow's own state


def route_after_decision(redraft: str) -> Callable[[ApprovalState], str]:
    """The finalizing node's router: END, back to ``redraft`` after a first reject, or back to the
    approval node for a manual note after the second."""

    def route(state: ApprovalState) -> str:
        if state.get("outcome") != Outcome.rejected.value:
            return "__end__"
        return "await_approval" if state.get("manual_only") else redraft

    route.__name__ = "route_after_decision"
    return route


__all__ = [
    "ALL_ACTIONS",
    "MANUAL_ACTIONS",
    "Action",
    "ApprovalItem",
    "ApprovalRequest",
    "ApprovalState",
    "Decision",
    "DecisionFields",
    "DecisionPayload",
    "ItemChoice",
    "ItemDecision",
    "Outcome",
    "allowed_actions",
    "apply_note_decision",
    "await_approval",
    "missing_items",
    "note_kind_of",
    "request_approval",
    "route_after_decision",
]
