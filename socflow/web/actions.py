"""What the UI's forms do. Decisions go through ``socflow.decisions.submit_decision``, the one decision
path shared with ``POST /api/v1/cases/{id}/decision`` and ``socflow approve``; the stale-draft refusal and
the analyst overrides below move into ``submit_decision`` itself (see docs/ui.md), after which
``decide`` is only its call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from socflow.api.deps import Services
from socflow.auth import Principal
from socflow.decisions import Action, Decision, StaleDraft, submit_decision
from socflow.enums import NoteStatus, Verdict
from socflow.errors import AttackError, ConflictError, InputError
from socflow.runner import AdvanceResult
from socflow.schemas import TechniqueRecord
from socflow.store import CaseStore
from socflow.web.labels_shim import ANALYST_SOURCE, set_analyst_labels

MAX_OVERRIDE_TECHNIQUES = 20
_SPLIT = re.compile(r"[\s,;]+")


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
        )


def parse_verdict(raw: str | None) -> Verdict | None:
    if not raw:
        return None
    try:
        return Verdict(raw)
    except ValueError:
        raise InputError(f"unknown verdict {raw[:40]!r}", field="verdict") from None


def resolve_techniques(catalog: Any, raw: str | None) -> list[TechniqueRecord]:
    """Technique ids typed by an analyst, validated against the ATT&CK catalog (names and tactics from it)."""
    if not raw:
        return []
    ids = [x for x in _SPLIT.split(raw.strip()) if x]
    if len(ids) > MAX_OVERRIDE_TECHNIQUES:
        raise InputError(f"at most {MAX_OVERRIDE_TECHNIQUES} techniques", field="techniques")
    out: dict[str, TechniqueRecord] = {}
    for raw_id in ids:
        try:
            tech = catalog.resolve(raw_id)
        except AttackError as exc:
            raise InputError(str(exc), field="techniques") from None
        out.setdefault(
            tech.id,
            TechniqueRecord(
                technique_id=tech.id,
                name=tech.name,
                tactics=list(catalog.tactic_names(tech)),
                source=ANALYST_SOURCE,
                confidence=1.0,
            ),
        )
    return list(out.values())


def refuse_stale(svc: Services, case_id: int) -> None:
    with svc.factory() as session:
        note = CaseStore(session).get_note(case_id)
        if note is not None and note.status == NoteStatus.draft.value and note.stale_at is not None:
            raise StaleDraft(
                f"the draft of case {case_id} is stale: new alerts joined the case after it was written; "
                "a re-assessment is on its way"
            )


def decide(svc: Services, case_id: int, form: DecisionForm, who: Principal) -> AdvanceResult:
    """Validate the form, refuse a stale draft, submit the decision, then store the overrides as labels."""
    if form.action not in ("approve", "edit", "reject", "escalate"):
        raise InputError("choose approve, edit, reject or escalate", field="action")
    action: Action = form.action  # type: ignore[assignment]
    try:
        decision = Decision(
            action=action,
            user=who.name,
            body=form.body if action == "edit" else None,
            reason=form.reason,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or ("reason" if action != "edit" else "body")
        raise InputError(str(err.get("msg", "invalid")).removeprefix("Value error, "), field=where) from None
    verdict = parse_verdict(form.verdict)
    techniques = resolve_techniques(svc.runner.deps.attack, form.techniques)
    refuse_stale(svc, case_id)
    result = submit_decision(svc.runner, case_id, decision, run_id=form.run_id)
    if not result.advanced:
        raise ConflictError(f"run {result.run_id} was already decided")
    if verdict is not None or techniques:
        with svc.factory() as session, session.begin():
            set_analyst_labels(
                CaseStore(session), case_id, actor=who.name, verdict=verdict, techniques=techniques
            )
    return result


def assign_to_me(svc: Services, case_id: int, who: Principal) -> None:
    with svc.factory() as session, session.begin():
        CaseStore(session).update_case(case_id, actor=web_actor(who), assignee=who.name)
