from __future__ import annotations

from pathlib import Path

import pytest

from socflow.evaluation.datasets import DatasetError, matches, read_jsonl, read_log_labels, split_ids


def test_labels_csv_extra_columns_ignored_and_ids_split(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text(
        "file,technique_ids,tactic_ids,note\na/x.json,T1059; T1003.001,TA0002,free text\nb.evtx,,,\n",
        encoding="utf-8",
    )
    labels = read_log_labels(tmp_path)
    assert labels[0].file == "a/x.json"
    assert labels[0].technique_ids == ["T1059", "T1003.001"]
    assert labels[0].technique_ids_v18_1 is None
    assert labels[0].tactic_ids == ["TA0002"]
    assert labels[1].technique_ids == []


def test_labels_jsonl_and_elsewhere(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.jsonl"
    other.write_text('{"file": "x.json", "technique_ids": ["T1059"], "technique_ids_v18_1": "T1059.001"}\n')
    (label,) = read_log_labels(tmp_path, other)
    assert label.technique_ids_v18_1 == ["T1059.001"]
    with pytest.raises(DatasetError, match="labels"):
        read_log_labels(tmp_path / "empty")


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"d.jsonl:3"):
        list(read_jsonl(path))


def test_include_globs() -> None:
    assert matches("sigma-regression/rules/a/b.evtx", ["sigma-regression/**"])
    assert not matches("evtx-attack-samples/a.evtx", ["sigma-regression/**"])
    assert matches("anything", [])
    assert split_ids(["T1", " T2 ", "T1"]) == ["T1", "T2"]
