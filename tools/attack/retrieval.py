"""Text retrieval over the ATT&CK catalog: two BM25 rankings (``bm25s``) fused.

1. ATT&CK's own words: one document per active technique — the name (repeated, so it weighs more), the
   parent's name for a sub-technique, the description without citation markers, the detection-strategy
   names, analytic text and log sources, and the legacy v17 detection paragraph.
2. Worked examples (``tools.attack.examples``): SigmaHQ rule titles and descriptions, each labelled with
   the techniques its authors tagged. The ``EXAMPLE_NEIGHBOURS`` best-matching examples vote for their
   techniques, each vote weighted by (its score / the best score) ** ``VOTE_POWER``.

Each ranking is scaled to its best score and the two are summed (``DOC_WEIGHT`` for the first); ``pick``
returns the best technique and any other within ``PICK_RATIO`` of it (at most ``MAX_PICKS``): an alert
that shows two techniques gets both. The weights were chosen on the ``tune`` split of the examples and
are measured on the ``dev`` split (``docs/evaluation.md``). ``TechniqueIndex(catalog, examples=())`` is
the ATT&CK-only ranking with one pick, as it was before the examples (the evaluation's baseline).

Queries are tokenised like the documents (lower case, alphanumeric runs, a small stopword list, plural
folding). Build once per process (``get_index()``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import cache

import bm25s
import numpy as np
from pydantic import BaseModel, Field

from socflow.errors import AttackError
from tools.attack.catalog import AttackCatalog, Technique, load_catalog
from tools.attack.examples import Example, load_examples, title_key

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
EXAMPLE_NEIGHBOURS = 10
VOTE_POWER = 4.0
DOC_WEIGHT = 0.3
PICK_RATIO = 0.8
MAX_PICKS = 2


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
    """The fused ranking over the active techniques of one catalog (see the module docstring).

    ``examples``: the worked examples to index (default: the shipped ones; ``()`` for ATT&CK text only).
    ``exclude``: rule ids and texts held out — an example with one of those ids, or whose title matches
    one of those texts' titles, is left out of the index (an evaluation holds its own rows out this way).
    """

    def __init__(
        self,
        catalog: AttackCatalog,
        examples: Sequence[Example] | None = None,
        *,
        exclude: Collection[str] = (),
        exclude_texts: Collection[str] = (),
    ) -> None:
        self.catalog = catalog
        self._techs = sorted(catalog.active(), key=lambda t: t.id)
        position = {t.id: i for i, t in enumerate(self._techs)}
        corpus = [tokenize(document_text(t, catalog)) for t in self._techs]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._vocab: dict[str, int] = self._bm25.vocab_dict
        held_ids, held_titles = set(exclude), {title_key(t) for t in exclude_texts}
        chosen = [
            e
            for e in (load_examples() if examples is None else examples)
            if e.rule_id not in held_ids and title_key(e.title) not in held_titles
        ]
        self._labels: list[list[int]] = []
        kept: list[list[str]] = []
        for example in chosen:
            ids: set[str] = set()
            for tid in example.techniques:
                try:
                    ids |= {t.id for t in catalog.resolve_all([tid])}
                except AttackError:
                    continue
            labels = sorted(position[i] for i in ids if i in position)
            tokens = tokenize(example.text)
            if labels and tokens:
                self._labels.append(labels)
                kept.append(tokens)
        self.examples = len(kept)
        self._ex_bm25: bm25s.BM25 | None = None
        self._ex_vocab: dict[str, int] = {}
        if kept:
            self._ex_bm25 = bm25s.BM25()
            self._ex_bm25.index(kept, show_progress=False)
            self._ex_vocab = self._ex_bm25.vocab_dict
        self.max_picks = MAX_PICKS if kept else 1

    def __len__(self) -> int:
        return len(self._techs)

    def doc_scores(self, text: str) -> np.ndarray:
        """BM25 of ``text`` against ATT&CK's own text, one score per technique."""
        tokens = [t for t in tokenize(text) if t in self._vocab]
        if not tokens:
            return np.zeros(len(self._techs), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def example_votes(self, text: str) -> np.ndarray:
        """The techniques of the best-matching examples, each vote weighted by its relative score."""
        votes = np.zeros(len(self._techs), dtype=np.float32)
        tokens = [t for t in tokenize(text) if t in self._ex_vocab]
        if self._ex_bm25 is None or not tokens:
            return votes
        scores = np.asarray(self._ex_bm25.get_scores(tokens), dtype=np.float32)
        order = np.lexsort((np.arange(len(scores)), -scores))[:EXAMPLE_NEIGHBOURS]
        best = float(scores[order[0]])
        for i in order:
            if scores[i] <= 0:
                break
            votes[self._labels[int(i)]] += (float(scores[i]) / best) ** VOTE_POWER
        return votes

    def scores(self, text: str) -> np.ndarray:
        """The fused score per technique (0 where neither ranking found it)."""
        docs = self.doc_scores(text)
        if self._ex_bm25 is None:
            return docs
        votes = self.example_votes(text)
        out = np.zeros(len(self._techs), dtype=np.float32)
        for part, weight in ((votes, 1.0), (docs, DOC_WEIGHT)):
            top = float(part.max())
            if top > 0:
                out += weight * part / top
        return out

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

    def pick(self, text: str) -> list[ScoredTechnique]:
        """What the text supports: the best hit and any within ``PICK_RATIO`` of it (``max_picks``)."""
        hits = self.search(text, self.max_picks)
        return [h for h in hits if h.score >= PICK_RATIO * hits[0].score] if hits else []


@cache
def get_index() -> TechniqueIndex:
    """The index over the shipped catalog, built once per process."""
    return TechniqueIndex(load_catalog())
