"""ATT&CK: the pinned offline catalog, BM25 retrieval and the candidate-only mapper.

Public API::

    load_catalog() -> AttackCatalog          # cached; .resolve(id), .lookup(id), .tactic_names(t)
    get_index() -> TechniqueIndex             # cached; .search(text, k) -> list[ScoredTechnique]
    map_techniques(MappingInput, *, model=None, ctx=None) -> MappingResult
    event_query_text(raw_event) -> str        # retrieval query text from a raw Windows event
"""

from tools.attack.catalog import (
    AttackCatalog,
    DeprecatedTechniqueError,
    MalformedTechniqueIdError,
    Technique,
    load_catalog,
    technique_tags,
)
from tools.attack.mapper import (
    Candidate,
    EvidenceText,
    MappedTechnique,
    MappingInput,
    MappingResult,
    Rejection,
    TechniqueSource,
    map_techniques,
)
from tools.attack.query import event_query_text
from tools.attack.retrieval import ScoredTechnique, TechniqueIndex, get_index

__all__ = [
    "AttackCatalog",
    "Candidate",
    "DeprecatedTechniqueError",
    "EvidenceText",
    "MalformedTechniqueIdError",
    "MappedTechnique",
    "MappingInput",
    "MappingResult",
    "Rejection",
    "ScoredTechnique",
    "Technique",
    "TechniqueIndex",
    "TechniqueSource",
    "event_query_text",
    "get_index",
    "load_catalog",
    "map_techniques",
    "technique_tags",
]
