"""``attack-text`` and ``attack-logs``: ATT&CK mapping quality on labelled text and labelled log files.

attack-text: JSONL rows ``{"text": ..., "techniques": [...]}``; ``map_techniques`` on the text alone (no
rule tags). Gold ids are resolved through the catalog (v19 ids via the crosswalk, revoked ids to their
replacement); unresolvable gold ids are counted and dropped.

attack-logs: a folder of log files and ``labels.csv``/``labels.jsonl``. Each file is loaded into a fresh
in-memory embedded SIEM; the shipped Sigma rules run over it and every alert is mapped as alert_triage's
``map_attack`` does (title + description + rule tags, the model choosing among candidates). A second
variant maps from the loaded events' own field values only (``event_query_text``), without rule tags.
Neither path ever sees the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from socflow.errors import AttackError, ModelError
from socflow.evaluation import metrics
from socflow.evaluation.datasets import DatasetError, LogLabel, matches, read_jsonl, read_log_labels
from socflow.evaluation.report import EvalReport, ItemResult
from socflow.evaluation.tasks import EvalOptions
from socflow.model.base import CallContext, ModelClient
from tools.attack import AttackCatalog, MappingInput, MappingResult, get_index, load_catalog, map_techniques
from tools.attack.catalog import V19_TACTICS
from tools.attack.query import event_query_text
from tools.attack.retrieval import TechniqueIndex
from tools.siem.detect import DEFAULT_RULES_DIR, DetectReport, compile_rules
from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import detect_batched
from tools.siem.pack import load_rule_set
from tools.siem.sigma_rules import CompiledRule

#: Events whose field values make up the "event content" query of one file.
MAX_QUERY_EVENTS = 200
MAX_QUERY_CHARS = 20_000
VARIANT_ALL = "all_sources"
VARIANT_CONTENT = "retrieval_model_no_rule_tags"


def resolve_gold(catalog: AttackCatalog, ids: list[str]) -> tuple[set[str], list[str]]:
    """Catalog ids for label ids (v19 -> every v18.1 id it stood for), and the ids that did not resolve."""
    out: set[str] = set()
    bad: list[str] = []
    for tid in ids:
        try:
            out |= {t.id for t in catalog.resolve_all([tid])}
        except AttackError:
            bad.append(tid)
    return out, bad


def ranked_ids(results: list[MappingResult]) -> list[str]:
    """Mapped technique ids from several mappings, best first: higher confidence, then first seen."""
    best: dict[str, float] = {}
    for result in results:
        for t in result.techniques:
            best[t.technique_id] = max(best.get(t.technique_id, 0.0), t.confidence)
    order = {tid: n for n, tid in enumerate(best)}
    return sorted(best, key=lambda tid: (-best[tid], order[tid]))


def ranked_with_candidates(results: list[MappingResult]) -> list[str]:
    """The mapped ids (``ranked_ids``), then the mappers' other candidates in their order (for top-k)."""
    out = ranked_ids(results)
    for result in results:
        out.extend(c.id for c in result.candidates if c.id not in out)
    return out


def invalid_count(catalog: AttackCatalog, ids: list[str]) -> int:
    return sum(1 for tid in ids if tid not in catalog or not catalog.lookup(tid).active)


# -- attack-text ---------------------------------------------------------------------------------------


def text_metrics(gold: list[set[str]], pred: list[set[str]]) -> dict[str, Any]:
    return {
        "full": metrics.set_scores(gold, pred),
        "parent": metrics.set_scores([metrics.parents(g) for g in gold], [metrics.parents(p) for p in pred]),
    }


def run_text(opts: EvalOptions) -> EvalReport:
    """Map each row's text; the retrieval index holds the dataset's own rows out (by id and by title), and
    the ATT&CK-only retrieval of before the worked examples (``baseline_retrieval``) is measured beside it."""
    catalog = load_catalog()
    rows = []
    for line, row in read_jsonl(opts.dataset):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("techniques"), list):
            raise DatasetError(f"{opts.dataset}:{line}: needs 'text' (string) and 'techniques' (list)")
        rows.append((line, row))
    rows = rows[: opts.limit] if opts.limit is not None else rows
    held_ids = {str(row["id"]) for _, row in rows if row.get("id") is not None}
    held_ids |= {str(row["rule_id"]) for _, row in rows if row.get("rule_id") is not None}
    index = TechniqueIndex(catalog, exclude=held_ids, exclude_texts=[row["text"] for _, row in rows])
    mapper = Mapper(opts.model, catalog, index)
    baseline = TechniqueIndex(catalog, examples=())
    baseline_sets: list[set[str]] = []
    opts.on_total(len(rows))
    items: list[ItemResult] = []
    gold_sets: list[set[str]] = []
    pred_sets: list[set[str]] = []
    unresolved = invalid = 0
    for line, row in rows:
        gold, bad = resolve_gold(catalog, [str(t) for t in row["techniques"]])
        unresolved += len(bad)
        item = ItemResult(id=str(row.get("id", f"line-{line}")), label={"techniques": sorted(gold)})
        with opts.measure(item):
            errors = len(mapper.errors)
            result = mapper(MappingInput(text=row["text"]))
            if len(mapper.errors) > errors:
                item.error = f"model failed: {mapper.errors[-1]}; mapped without the model"
        ids = ranked_ids([result])
        invalid += invalid_count(catalog, ids)
        baseline_sets.append({h.id for h in baseline.pick(row["text"])})
        item.prediction = {"techniques": ids, "model_choice": result.model_choice}
        if bad:
            item.label["unresolved"] = bad
        items.append(item)
        gold_sets.append(gold)
        pred_sets.append(set(ids))
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model=opts.model_name,
        workflow_version=f"attack-catalog@{catalog.version}",
        counts={
            "items": len(items),
            "unresolved_gold_ids": unresolved,
            "model_errors": len(mapper.errors),
            "examples_indexed": index.examples,
        },
        metrics={
            **text_metrics(gold_sets, pred_sets),
            "invalid_ids_emitted": invalid + sum(invalid_count(catalog, list(b)) for b in baseline_sets),
            "baseline_retrieval": text_metrics(gold_sets, baseline_sets),
        },
        items=items,
    )


# -- attack-logs ---------------------------------------------------------------------------------------


class LogLabels:
    """Gold techniques and tactics of one labelled file, by the documented rules."""

    def __init__(self, catalog: AttackCatalog, label: LogLabel) -> None:
        self.ambiguous = 0
        self.unresolved: list[str] = []
        if label.technique_ids_v18_1 is not None:
            self.techniques, self.unresolved = resolve_gold(catalog, label.technique_ids_v18_1)
        else:
            self.techniques = set()
            for tid in label.technique_ids:
                try:
                    if len(catalog.v19_to_v18(tid)) > 1:
                        self.ambiguous += 1
                except AttackError:
                    pass
                ids, bad = resolve_gold(catalog, [tid])
                self.techniques |= ids
                self.unresolved += bad
        self.tactics = set(label.tactic_ids)
        if not self.tactics:
            for name in label.tactics:
                short = name.strip().lower().replace("_", "-").replace(" ", "-")
                try:
                    self.tactics.add(catalog.tactic(V19_TACTICS.get(short, short)).id)
                except AttackError:
                    self.unresolved.append(name)


def _tactic_ids(catalog: AttackCatalog, tid: str) -> set[str]:
    return {catalog.tactic(s).id for s in catalog.lookup(tid).tactics}


Row = tuple[list[str], list[str], set[str], set[str]]


def logs_metrics(rows: list[Row], catalog: AttackCatalog) -> dict[str, Any]:
    """rows: (ranked suggestions, mapped ids, gold techniques, gold tactics) per file.

    Top-k, Jaccard, F1 and tactic accuracy judge the mapped ids (what a case would carry, best first);
    ``candidates_top3_*`` judge the ranked suggestions (mapped ids, then the mapper's other candidates),
    which do not depend on the model's choice.
    """
    tech_rows = [r for r in rows if r[2]]
    tactic_rows = [r for r in rows if r[3]]
    out: dict[str, Any] = {"files_with_technique_labels": len(tech_rows)}
    for k, level in ((1, False), (3, False), (1, True), (3, True)):
        name = f"top{k}_{'parent' if level else 'full'}"
        hits = [metrics.hit_at_k(mapped, gold, k, parent_level=level) for _, mapped, gold, _ in tech_rows]
        out[name] = metrics.mean(1.0 if h else 0.0 for h in hits)
    for level in (False, True):
        hits = [metrics.hit_at_k(ranked, gold, 3, parent_level=level) for ranked, _, gold, _ in tech_rows]
        out[f"candidates_top3_{'parent' if level else 'full'}"] = metrics.mean(
            1.0 if h else 0.0 for h in hits
        )
    out["jaccard_parent"] = metrics.mean(
        metrics.jaccard(metrics.parents(gold), metrics.parents(mapped)) for _, mapped, gold, _ in tech_rows
    )
    out["f1_parent"] = metrics.mean(
        metrics.set_f1(metrics.parents(gold), metrics.parents(mapped)) for _, mapped, gold, _ in tech_rows
    )
    out["files_with_tactic_labels"] = len(tactic_rows)
    out["tactic_accuracy"] = metrics.mean(
        1.0 if mapped and _tactic_ids(catalog, mapped[0]) & tactics else 0.0
        for _, mapped, _, tactics in tactic_rows
    )
    return out


def content_query(siem: EmbeddedSiem) -> str:
    parts: list[str] = []
    for n, event in enumerate(siem.iter_all()):
        if n >= MAX_QUERY_EVENTS:
            break
        parts.append(event_query_text(event.raw))
    return "\n".join(parts)[:MAX_QUERY_CHARS]


class Mapper:
    """``map_techniques`` with the chosen model. A model failure (e.g. a prompt longer than the model's
    context) is recorded in ``errors`` and that one mapping falls back to no model, so the run goes on."""

    def __init__(
        self, model: ModelClient | None, catalog: AttackCatalog, index: TechniqueIndex | None = None
    ) -> None:
        self.model, self.catalog, self.index = model, catalog, index or get_index()
        self.errors: list[str] = []

    def __call__(self, inp: MappingInput) -> MappingResult:
        ctx = CallContext(node="map_attack")
        try:
            return map_techniques(inp, model=self.model, catalog=self.catalog, index=self.index, ctx=ctx)
        except ModelError as exc:
            self.errors.append(type(exc).__name__)
            return map_techniques(inp, model=None, catalog=self.catalog, index=self.index, ctx=ctx)


def map_file(path: Path, rules: list[Any], mapper: Mapper) -> dict[str, Any]:
    """Predictions for one log file from its content: both variants, and what the SIEM made of it."""
    with EmbeddedSiem(":memory:") as siem:
        loaded = siem.load([path])
        alerts = list(detect_batched(siem, rules, DetectReport()))
        by_rule: list[MappingResult] = []
        seen: set[str] = set()
        for alert in alerts:
            if alert.rule.id in seen:
                continue
            seen.add(alert.rule.id)
            text = f"{alert.title}. {alert.description or ''}"[:4000]
            by_rule.append(mapper(MappingInput(text=text, rule_tags=alert.rule.tags)))
        query = content_query(siem)
    content = [mapper(MappingInput(text=query))] if query.strip() else []
    rule_results = by_rule or content
    return {
        "events": loaded.loaded,
        "skipped_records": loaded.skipped_count,
        "alerts": len(alerts),
        "rules_fired": sorted(seen),
        VARIANT_ALL: ranked_ids(rule_results),
        VARIANT_CONTENT: ranked_ids(content),
        "ranked": {
            VARIANT_ALL: ranked_with_candidates(rule_results),
            VARIANT_CONTENT: ranked_with_candidates(content),
        },
    }


def run_logs_pack(opts: EvalOptions) -> EvalReport:
    """``attack-logs`` with the SigmaHQ pack's enabled rules (documented default filters)."""
    rules = load_rule_set().enabled()
    return run_logs(opts, rules=rules, rules_label=f"sigma-pack={len(rules)}")


def run_logs(
    opts: EvalOptions, *, rules: list[CompiledRule] | None = None, rules_label: str | None = None
) -> EvalReport:
    if not opts.dataset.is_dir():
        raise DatasetError(f"{opts.dataset}: not a folder")
    catalog = load_catalog()
    labels = [lb for lb in read_log_labels(opts.dataset, opts.labels) if matches(lb.file, opts.include)]
    missing = [lb.file for lb in labels if not (opts.dataset / lb.file).is_file()]
    labels = [lb for lb in labels if (opts.dataset / lb.file).is_file()]
    labels = labels[: opts.limit] if opts.limit is not None else labels
    opts.on_total(len(labels))
    if rules is None:
        compile_report = DetectReport()
        rules = compile_rules([DEFAULT_RULES_DIR], compile_report)
        rules_label = f"sigma-rules={compile_report.rules_converted}"
    items: list[ItemResult] = []
    rows: dict[str, list[Row]] = {VARIANT_ALL: [], VARIANT_CONTENT: []}
    mapper = Mapper(opts.model, catalog)
    ambiguous = no_technique = 0
    invalid = 0
    for label in labels:
        gold = LogLabels(catalog, label)
        ambiguous += gold.ambiguous
        no_technique += 0 if gold.techniques else 1
        item = ItemResult(
            id=label.file,
            label={"techniques": sorted(gold.techniques), "tactics": sorted(gold.tactics)},
        )
        if gold.unresolved:
            item.label["unresolved"] = gold.unresolved
        with opts.measure(item):
            errors = len(mapper.errors)
            item.prediction = map_file(opts.dataset / label.file, rules, mapper)
            if len(mapper.errors) > errors:
                item.error = f"model failed on {len(mapper.errors) - errors} mapping(s): {mapper.errors[-1]}"
        for variant, bucket in rows.items():
            invalid += invalid_count(catalog, item.prediction[variant])
            mapped = item.prediction[variant]
            bucket.append((item.prediction["ranked"][variant], mapped, gold.techniques, gold.tactics))
        items.append(item)
    return EvalReport(
        task=opts.task,
        dataset=str(opts.dataset),
        model=opts.model_name,
        workflow_version=f"attack-catalog@{catalog.version}; {rules_label}",
        counts={
            "files": len(items),
            "files_missing": len(missing),
            "files_without_technique_labels": no_technique,
            "ambiguous_v19_label_ids": ambiguous,
            "files_without_alerts": sum(1 for i in items if not i.prediction["alerts"]),
            "model_errors": len(mapper.errors),
        },
        metrics={
            **{variant: logs_metrics(bucket, catalog) for variant, bucket in rows.items()},
            "invalid_ids_emitted": invalid,
        },
        notes=[f"missing file: {f}" for f in missing[:20]],
        items=items,
    )
