"""TEMPORARY SHIM, delete when ``CaseStore.set_analyst_labels`` lands (the exact method is in docs/ui.md).

An analyst's verdict and technique overrides are stored as labels for evaluation: the model's verdict and
techniques stay as they are; the analyst's techniques are added as ``case_techniques`` rows with source
``analyst`` and one ``case.labelled`` audit event records the verdict and the technique list.
"""

from __future__ import annotations

from collections.abc import Sequence

from socflow.enums import Verdict
from socflow.schemas import TechniqueRecord
from socflow.store import CaseStore
from socflow.tables import CaseTechnique

ANALYST_SOURCE = "analyst"
LABEL_ACTION = "case.labelled"


def set_analyst_labels(
    store: CaseStore,
    case_id: int,
    *,
    actor: str,
    verdict: Verdict | str | None = None,
    techniques: Sequence[TechniqueRecord] = (),
) -> list[CaseTechnique]:
    method = getattr(store, "set_analyst_labels", None)
    if method is not None:  # the store method landed: use it (and delete this module)
        return list(method(case_id, actor=actor, verdict=verdict, techniques=techniques))
    case = store.get_case(case_id)
    existing = {(t.technique_id, t.source) for t in store.list_techniques(case_id)}
    now = store.clock()
    added: list[CaseTechnique] = []
    for item in techniques:
        record = item.model_copy(update={"source": ANALYST_SOURCE})
        if (record.technique_id, ANALYST_SOURCE) in existing:
            continue
        existing.add((record.technique_id, ANALYST_SOURCE))
        row = CaseTechnique(case_id=case_id, created_at=now, **record.model_dump())
        store.session.add(row)
        added.append(row)
    store.session.flush()
    case.updated_at = now
    store._audit(
        LABEL_ACTION,
        actor=actor,
        entity_type="case",
        entity_id=case_id,
        case_id=case_id,
        data={
            "verdict": Verdict(verdict).value if verdict else None,
            "model_verdict": case.verdict,
            "techniques": [t.technique_id for t in techniques],
        },
    )
    return added
