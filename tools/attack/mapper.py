"""Map alert text to ATT&CK techniques without ever inventing an identifier.

1. Candidates: the detection rule's technique tags (v19 ids through the crosswalk, revoked ids to their
   replacement) and the BM25 retrieval hits for the alert and evidence text.
2. With a model configured, the model ``choose``s one candidate id or ``none``; anything else it returns is
   recorded as a rejection and never becomes a result.
3. Validation: every result is re-resolved against the catalog; names and tactics are the catalog's.

Without a model the result is the rule-tag techniques plus the retrieval's picks (``TechniqueIndex.pick``:
the best hit and any close second).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, Field

from socflow.errors import AttackError, StructuredOutputError
from socflow.model.base import CallContext, Message, ModelClient
from socflow.untrusted import clean_text, fence
from tools.attack.catalog import AttackCatalog, Technique, load_catalog, technique_tags
from tools.attack.retrieval import TechniqueIndex, get_index

NONE_OPTION = "none"
RULE_TAG_CONFIDENCE = 0.9
MODEL_CONFIDENCE = 0.75
RETRIEVAL_CONFIDENCE_CAP = 0.5
_LEADING_ID = re.compile(r"^\s*(T\d{4}(?:\.\d{3})?)\b", re.IGNORECASE)

SYSTEM_PROMPT = (
    "You map security alerts to MITRE ATT&CK Enterprise techniques. Choose the single candidate that best "
    "describes the observed behaviour, or 'none' if no candidate fits. Answer with one option exactly as "
    "listed. Only the listed candidate ids are allowed."
)


class TechniqueSource(StrEnum):
    RULE_TAG = "rule_tag"
    RETRIEVAL = "retrieval"
    MODEL = "model"


class RejectionReason(StrEnum):
    NOT_A_CANDIDATE = "not_a_candidate"  # the model returned an id outside the candidate list
    INVALID_CHOICE = "invalid_choice"  # the model runtime refused the answer (not one of the options)
    INVALID_TAG = "invalid_tag"  # a rule tag the catalog does not know


class EvidenceText(BaseModel):
    """An evidence item's id and the text that describes it (event fields, rule title)."""

    evidence_id: str = Field(max_length=200)
    text: str


class MappingInput(BaseModel):
    text: str = Field(description="alert title / description / key fields (untrusted)")
    rule_tags: list[str] = Field(default_factory=list, description="Sigma-style tags, e.g. attack.t1059.001")
    evidence: list[EvidenceText] = Field(default_factory=list)


class Candidate(BaseModel):
    id: str
    name: str
    tactics: list[str]
    source: TechniqueSource
    score: float = Field(ge=0, description="BM25 score; 0 for rule tags")


class MappedTechnique(BaseModel):
    """A validated technique for a case (one ``case_techniques`` row)."""

    technique_id: str
    name: str
    tactics: list[str] = Field(description="tactic display names in matrix order")
    confidence: float = Field(ge=0, le=1)
    source: TechniqueSource
    evidence_ids: list[str] = Field(default_factory=list)


class Rejection(BaseModel):
    proposed: str | None = Field(default=None, max_length=80, description="None when the runtime refused it")
    reason: RejectionReason


class MappingResult(BaseModel):
    techniques: list[MappedTechnique]
    candidates: list[Candidate]
    rejections: list[Rejection] = Field(default_factory=list)
    model_choice: str | None = None


def _tag_candidates(tags: Sequence[str], catalog: AttackCatalog) -> tuple[list[Technique], list[Rejection]]:
    techs: list[Technique] = []
    rejections: list[Rejection] = []
    for tid in technique_tags(tags):
        try:
            techs.extend(t for t in catalog.resolve_all([tid]) if t.id not in {x.id for x in techs})
        except AttackError:
            rejections.append(Rejection(proposed=tid, reason=RejectionReason.INVALID_TAG))
    return techs, rejections


def _query(inp: MappingInput) -> str:
    return "\n".join([inp.text, *(e.text for e in inp.evidence)])


def candidate_list(
    inp: MappingInput, *, catalog: AttackCatalog, index: TechniqueIndex, k: int = 8
) -> tuple[list[Candidate], list[Rejection]]:
    """Rule-tag candidates first, then retrieval hits not already present (at most ``k`` of those)."""
    tagged, rejections = _tag_candidates(inp.rule_tags, catalog)
    out = [
        Candidate(
            id=t.id, name=t.name, tactics=catalog.tactic_names(t), source=TechniqueSource.RULE_TAG, score=0
        )
        for t in tagged
    ]
    for hit in index.search(_query(inp), k + len(out)):
        if len(out) - len(tagged) >= k:
            break
        if hit.id not in {c.id for c in out}:
            out.append(Candidate(**hit.model_dump(), source=TechniqueSource.RETRIEVAL))
    return out, rejections


def _supporting(tid: str, inp: MappingInput, index: TechniqueIndex, *, k: int = 10) -> list[str]:
    """Evidence items whose own text retrieves ``tid`` in the top ``k``; all items when none does."""
    ids = [e.evidence_id for e in inp.evidence if tid in {h.id for h in index.search(e.text, k)}]
    return ids or [e.evidence_id for e in inp.evidence]


def choose_prompt(inp: MappingInput, candidates: Sequence[Candidate]) -> list[Message]:
    lines = [f"- {c.id} — {c.name} ({', '.join(c.tactics)})" for c in candidates]
    evidence = "\n".join(f"[{e.evidence_id}] {clean_text(e.text, 600)}" for e in inp.evidence[:20])
    user = (
        "Alert:\n"
        + fence("alert", inp.text + ("\n\nEvidence:\n" + evidence if evidence else ""))
        + "\n\nCandidate techniques:\n"
        + "\n".join(lines)
        + f"\n\nAnswer with one candidate id, or '{NONE_OPTION}'."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _parse_choice(answer: str) -> str:
    stripped = answer.strip()
    if stripped.lower().strip(".'\"") == NONE_OPTION:
        return NONE_OPTION
    match = _LEADING_ID.match(stripped)
    return match.group(1).upper() if match else stripped[:80]


def map_techniques(
    inp: MappingInput,
    *,
    model: ModelClient | None = None,
    catalog: AttackCatalog | None = None,
    index: TechniqueIndex | None = None,
    ctx: CallContext | None = None,
    k: int = 8,
) -> MappingResult:
    """Validated techniques for one alert (see the module docstring)."""
    catalog = catalog or load_catalog()
    index = index or get_index()
    candidates, rejections = candidate_list(inp, catalog=catalog, index=index, k=k)
    by_id = {c.id: c for c in candidates}
    top_score = max((c.score for c in candidates), default=0.0) or 1.0

    chosen: list[tuple[str, TechniqueSource, float]] = [
        (c.id, TechniqueSource.RULE_TAG, RULE_TAG_CONFIDENCE)
        for c in candidates
        if c.source is TechniqueSource.RULE_TAG
    ]
    choice: str | None = None
    tagged = {c.id for c in candidates if c.source is TechniqueSource.RULE_TAG}
    picks = [h for h in index.pick(_query(inp)) if h.id not in tagged]
    fallback = [
        (hit.id, TechniqueSource.RETRIEVAL, RETRIEVAL_CONFIDENCE_CAP * hit.score / top_score) for hit in picks
    ]
    if model is not None and candidates:
        options = [c.id for c in candidates] + [NONE_OPTION]
        try:
            choice = _parse_choice(model.choose(choose_prompt(inp, candidates), options, ctx=ctx))
        except StructuredOutputError:
            choice = None
            rejections.append(Rejection(reason=RejectionReason.INVALID_CHOICE))
            chosen.extend(fallback)
        if choice is None or choice == NONE_OPTION:
            pass
        elif choice in by_id:
            if by_id[choice].source is not TechniqueSource.RULE_TAG:
                chosen.append((choice, TechniqueSource.MODEL, MODEL_CONFIDENCE))
        else:
            rejections.append(Rejection(proposed=choice, reason=RejectionReason.NOT_A_CANDIDATE))
            chosen.extend(fallback)
    else:
        chosen.extend(fallback)

    techniques = []
    for tid, source, confidence in chosen:
        tech = catalog.resolve(tid)  # validation: the catalog's name and tactics, never the model's
        techniques.append(
            MappedTechnique(
                technique_id=tech.id,
                name=tech.name,
                tactics=catalog.tactic_names(tech),
                confidence=round(min(1.0, confidence), 3),
                source=source,
                evidence_ids=_supporting(tech.id, inp, index),
            )
        )
    return MappingResult(
        techniques=techniques, candidates=candidates, rejections=rejections, model_choice=choice
    )
