"""Text retrieval over the ATT&CK catalog with BM25 (``bm25s``).

One document per active technique: the name (repeated, so it weighs more), the parent's name for a
sub-technique, the description without citation markers, the detection-strategy names, analytic text and
log sources, and the legacy v17 detection paragraph. Queries are tokenised the same way (lower case,
alphanumeric runs, a small stopword list, plural folding). Build once per process (``get_index()``).
"""

from __future__ import annotations

import re
from functools import cache

import bm25s
import numpy as np
from pydantic import BaseModel, Field

from tools.attack.catalog import AttackCatalog, Technique, load_catalog

_TOKEN = re.compile(r"[a-z0-9]+")
_LINK = re.compile(r"\]\(https?://[^)]*\)")
_STOPWORD_TEXT = """
    a about above after again against all also an and any are as at be because been before being below
    between both but by can could did do does doing down during each either etc e.g eg few for from further
    had has have having he her here hers how i if in into is it its itself just may might more most much
    must my no nor not of off on once only or other our out over own same she should so some such than that
    the their them then there these they this those through to too under until up upon use used uses using
    very via was we were what when where which while who whom why will with within would you your
    adversary adversaries attacker attackers exe com www http https"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
NAME_WEIGHT = 3


def _fold(token: str) -> str:
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric tokens, stopwords dropped, plurals folded."""
    return [
        _fold(t) for t in _TOKEN.findall(_LINK.sub("]", text.lower())) if t not in STOPWORDS and len(t) > 1
    ]


def document_text(tech: Technique, catalog: AttackCatalog) -> str:
    parts = [tech.name] * NAME_WEIGHT
    if tech.parent_id and tech.parent_id in catalog:
        parts.append(catalog.lookup(tech.parent_id).name)
    parts.append(tech.description)
    for strategy in tech.detection_strategies:
        parts.append(strategy.name)
        parts.extend(a.description for a in strategy.analytics)
    parts.append(tech.legacy_detection)
    parts.extend(tech.data_components)
    parts.extend(tech.legacy_data_sources)
    return "\n".join(parts)


class ScoredTechnique(BaseModel):
    """One retrieval hit; name and tactics are the catalog's."""

    id: str
    name: str
    tactics: list[str]
    score: float = Field(ge=0)


class TechniqueIndex:
    """BM25 over the active techniques of one catalog."""

    def __init__(self, catalog: AttackCatalog) -> None:
        self.catalog = catalog
        self._techs = sorted(catalog.active(), key=lambda t: t.id)
        corpus = [tokenize(document_text(t, catalog)) for t in self._techs]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._vocab: dict[str, int] = self._bm25.vocab_dict

    def __len__(self) -> int:
        return len(self._techs)

    def scores(self, text: str) -> np.ndarray:
        tokens = [t for t in tokenize(text) if t in self._vocab]
        if not tokens:
            return np.zeros(len(self._techs), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def search(self, text: str, k: int = 10) -> list[ScoredTechnique]:
        """The ``k`` best-scoring techniques (score > 0), best first; ties break on id."""
        scores = self.scores(text)
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        out = []
        for i in order:
            if scores[i] <= 0:
                break
            tech = self._techs[int(i)]
            out.append(
                ScoredTechnique(
                    id=tech.id,
                    name=tech.name,
                    tactics=self.catalog.tactic_names(tech),
                    score=round(float(scores[i]), 4),
                )
            )
        return out


@cache
def get_index() -> TechniqueIndex:
    """The index over the shipped catalog, built once per process."""
    return TechniqueIndex(load_catalog())
