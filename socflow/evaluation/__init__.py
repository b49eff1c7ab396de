"""Measuring socflow: ``socflow eval`` (AI quality on labelled data) and ``socflow bench`` (speed, cost).

    datasets.py   dataset readers (JSONL rows, log-folder labels, include globs)
    metrics.py    pure metric functions (set P/R/F1, hit@k, Jaccard, binary scores, calibration)
    report.py     the JSON report (stable keys) and its flat table view
    tasks.py      the task interface (EvalOptions -> EvalReport), token counting, --model resolution
    triage.py     the ``triage`` task (ingest -> alert_triage -> persisted case)
    replay.py     the ``replay`` task (shadow re-run of approved cases)
    bench.py      ``socflow bench``

The ATT&CK tasks (``attack-text``, ``attack-logs``) need the tools: ``tools/evaluation``, reached through
``socflow.wiring.eval_tasks()``.
"""
