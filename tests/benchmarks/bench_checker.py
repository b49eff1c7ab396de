"""The grounded note checker on its labelled corpus: precision and recall of rejections.

    .venv/bin/python tests/benchmarks/bench_checker.py [CORPUS]

Also available as ``socflow eval grounding tests/notes/data/grounding_corpus.json``. Target (issue 19):
catches >= 95% of ungrounded, uncited or wrongly cited sentences; rejects <= 5% of grounded ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.evaluation.grounding import evaluate  # noqa: E402


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests/notes/data/grounding_corpus.json"
    metrics, items = evaluate(corpus)
    print(f"sentences: {len(items)}")
    for label, row in metrics["by_label"].items():
        print(f"  {label:14s} n={row['n']:4d} rejected={row['rejected']:4d}")
    print(f"recall (bad sentences rejected):    {metrics['recall_bad']:.3f}  (target >= 0.95)")
    print(f"precision (rejections that are bad): {metrics['precision']:.3f}")
    print(f"false rejections of good sentences:  {metrics['false_reject_rate_good']:.3f}  (target <= 0.05)")


if __name__ == "__main__":
    main()
