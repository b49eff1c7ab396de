"""BM25 retrieval over the catalog, with no model."""

from __future__ import annotations

import pytest

from tests.attack.cookbook import BRUTE_FORCE, LSASS, POWERSHELL
from tools.attack.catalog import load_catalog
from tools.attack.retrieval import get_index, tokenize


@pytest.mark.parametrize(
    ("play", "expected"),
    [(BRUTE_FORCE, "T1110"), (POWERSHELL, "T1059.001"), (LSASS, "T1003.001")],
)
def test_cookbook_plays_get_the_right_technique_in_the_top_5(play: str, expected: str) -> None:
    top5 = [hit.id for hit in get_index().search(play, 5)]
    if expected == "T1110":
        assert any(tid == "T1110" or tid.startswith("T1110.") for tid in top5), top5
    else:
        assert expected in top5, top5


def test_wrong_cookbook_ids_do_not_outrank_the_right_ones() -> None:
    ps = [hit.id for hit in get_index().search(POWERSHELL, 10)]
    assert "T1059.003" not in ps[: ps.index("T1059.001") + 1]
    ls = [hit.id for hit in get_index().search(LSASS, 10)]
    assert "T1003.002" not in ls[: ls.index("T1003.001") + 1]


def test_hits_carry_catalog_names_and_tactics_and_are_ranked() -> None:
    hits = get_index().search(LSASS, 10)
    catalog = load_catalog()
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        tech = catalog.resolve(hit.id)
        assert (hit.name, hit.tactics) == (tech.name, catalog.tactic_names(tech))


def test_only_active_techniques_are_indexed() -> None:
    index = get_index()
    assert len(index) == len(load_catalog().active()) == 691
    ids = {h.id for h in index.search("PowerShell cmdlet Invoke-Expression script", 50)}
    assert "T1086" not in ids  # revoked in favour of T1059.001


def test_queries_without_known_words_return_nothing() -> None:
    assert get_index().search("", 5) == []
    assert get_index().search("the of and zzzqqq", 5) == []


def test_tokenize_splits_paths_drops_stopwords_and_folds_plurals() -> None:
    tokens = tokenize(r"C:\Windows\System32\lsass.exe dumps the Credentials")
    assert tokens == ["window", "system32", "lsass", "dump", "credential"]


def test_worked_examples_vote_for_their_techniques_and_held_out_ones_do_not() -> None:
    from tools.attack.examples import Example
    from tools.attack.retrieval import TechniqueIndex

    catalog = get_index().catalog
    made_up = Example(
        rule_id="r-1", title="Zorblax frobnicator launched", description="", techniques=("T1059.001",)
    )
    two = Example(
        rule_id="r-2", title="Quuxle dump via zorblax", description="", techniques=("T1003.001", "T1059.001")
    )
    index = TechniqueIndex(catalog, examples=[made_up, two])
    assert index.examples == 2
    assert index.search("zorblax frobnicator", 1)[0].id == "T1059.001"  # words ATT&CK's own text never uses
    # both examples vote for T1059.001 ("zorblax"), the better match also for T1003.001: both picked
    assert [h.id for h in index.pick("quuxle zorblax")] == ["T1059.001", "T1003.001"]
    held = TechniqueIndex(
        catalog, examples=[made_up, two], exclude={"r-1"}, exclude_texts=["Quuxle dump via zorblax. x"]
    )
    assert held.examples == 0 and held.search("zorblax frobnicator quuxle", 5) == []
    # without examples: ATT&CK's text alone, one pick (the evaluation's baseline)
    bare = TechniqueIndex(catalog, examples=())
    assert bare.examples == 0 and len(bare.pick(POWERSHELL)) == 1
