"""``socflow siem rules`` (the rule pack) and ``socflow siem tuning`` (suppression proposals)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.errors import ConflictError, NotFoundError, SocflowError
from socflow.settings import get_settings
from tools.siem.detection import rule_set
from tools.siem.embedded import EmbeddedSiem
from tools.siem.pack import (
    FAILED,
    INVALID,
    UNSUPPORTED,
    ConversionCache,
    PackRule,
    active_pack_dir,
    build_pack,
    rule_text,
)
from tools.siem.stream import EMITTED, PENDING, SUPPRESSED, DetectionState

NOISY_THRESHOLD = 10
NOISE_FILE = "noise.json"

rules_app = typer.Typer(
    help="The Sigma rule pack: list, show, enable, disable, update.", no_args_is_help=True
)
tuning_app = typer.Typer(
    help="Suppression proposals from cases closed as false positive.", no_args_is_help=True
)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

SiemPath = Annotated[
    Path | None,
    typer.Option("--siem-path", help="Embedded SIEM SQLite file (default: settings, SOCFLOW_SIEM__PATH)."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print("error: " + message, style="red", markup=False)
    return typer.Exit(code)


def _state(siem_path: Path | None) -> tuple[EmbeddedSiem, DetectionState]:
    siem = EmbeddedSiem(siem_path or get_settings().siem.path)
    return siem, DetectionState(siem)


def noise_counts(pack_dir: Path) -> dict[str, int]:
    """Alerts per rule on benign background telemetry, as measured by the pack benchmark."""
    try:
        data = json.loads((pack_dir / NOISE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    counts = data.get("background_alerts_by_rule", {}) if isinstance(data, dict) else {}
    return {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}


@rules_app.command("list")
def list_rules(
    show: Annotated[
        str, typer.Option(help="enabled | available (all Windows) | failed | unsupported | noisy | all")
    ] = "enabled",
    status: Annotated[str | None, typer.Option(help="only this Sigma status")] = None,
    level: Annotated[str | None, typer.Option(help="only this level")] = None,
    limit: Annotated[int, typer.Option(min=0, help="rows shown (0: none, summary only)")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document (pack, counts, rules) instead of a table")
    ] = False,
    siem_path: SiemPath = None,
) -> None:
    """The pack's version, counts and rules with status, level, enabled flag, detections and noise."""
    settings = get_settings().detection
    siem, state = _state(siem_path)
    with siem:
        rs = rule_set(settings, state)
        counts = state.counts()
    pack_dir = active_pack_dir(settings.pack_dir)
    noise = noise_counts(pack_dir)
    enabled_ids = {r.rule_id for r in rs.rules if rs.rule_filter.enabled(r)}
    windows = rs.windows()
    info = rs.info
    version = info.version if info else "(no pack)"
    err.print(
        f"pack {version} from {info.source if info else '-'} (commit {info.commit if info else '-'}, "
        f"built {info.built_at if info else '-'}), {pack_dir}\n"
        f"{len(rs.rules)} rules: {len(windows)} Windows rules available, {len(enabled_ids)} enabled "
        f"(filters: status {','.join(rs.rule_filter.statuses)}; level >= {rs.rule_filter.min_level}; "
        f"folders {','.join(rs.rule_filter.folders)}; {len(rs.rule_filter.overrides)} overrides); "
        f"{len(rs.unsupported())} for other log sources; {len(rs.failures())} failed to convert; "
        f"{sum(1 for v in noise.values() if v > NOISY_THRESHOLD)} noisy on background telemetry",
        markup=False,
    )
    by_status = Counter(r.status or "-" for r in windows)
    err.print("available by status: " + ", ".join(f"{k} {v}" for k, v in by_status.most_common()))
    selected: list[PackRule]
    if show == "enabled":
        selected = [r for r in rs.rules if r.rule_id in enabled_ids]
    elif show == "available":
        selected = windows
    elif show == "failed":
        selected = rs.failures()
    elif show == "unsupported":
        selected = rs.unsupported()
    elif show == "noisy":
        selected = [r for r in windows if noise.get(r.rule_id, 0) > NOISY_THRESHOLD]
        selected.sort(key=lambda r: -noise.get(r.rule_id, 0))
    elif show == "all":
        selected = rs.rules
    else:
        raise _fail(f"--show {show!r}: one of enabled, available, failed, unsupported, noisy, all")
    selected = [
        r for r in selected if (status is None or r.status == status) and (level is None or r.level == level)
    ]
    table = Table("rule id", "status", "level", "folder", "on", "detections", "bg", "title / reason")
    rows: list[dict[str, Any]] = []
    for rule in selected[:limit]:
        detections = counts.get(rule.rule_id, {})
        row = {
            "rule_id": rule.rule_id,
            "status": rule.status,
            "level": rule.level,
            "folder": rule.folder,
            "enabled": rule.rule_id in enabled_ids,
            "detections": {k: detections.get(k, 0) for k in (PENDING, EMITTED, SUPPRESSED)},
            "background_alerts": noise.get(rule.rule_id, 0),
            "noisy": noise.get(rule.rule_id, 0) > NOISY_THRESHOLD,
            "title": rule.title,
            "path": rule.path,
            "error": rule.error,
        }
        if as_json:
            rows.append(row)
            continue
        table.add_row(
            rule.rule_id[:36],
            rule.status,
            rule.level,
            rule.folder,
            "yes" if row["enabled"] else "",
            str(sum(detections.values())) if detections else "",
            (str(row["background_alerts"]) + (" noisy" if row["noisy"] else "")) if noise else "",
            (rule.error or rule.title)[:120],
        )
    if as_json:
        pack = {
            "version": version,
            "source": info.source if info else None,
            "commit": info.commit if info else None,
            "rules": len(rs.rules),
            "windows_available": len(windows),
            "enabled": len(enabled_ids),
            "unsupported": len(rs.unsupported()),
            "failed": len(rs.failures()),
        }
        typer.echo(json.dumps({"pack": pack, "matching": len(selected), "rules": rows}))
    elif limit:
        out.print(table)
    err.print(f"{len(selected)} rules match; shown {min(limit, len(selected))}")


@rules_app.command("show")
def show_rule(
    key: Annotated[str, typer.Argument(help="rule id or path")],
    siem_path: SiemPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead of text")] = False,
) -> None:
    """One rule: metadata, enabled or not (and why), its converted query or failure reason, and its YAML."""
    settings = get_settings().detection
    siem, state = _state(siem_path)
    with siem:
        rs = rule_set(settings, state)
        counts = state.counts()
    rule = rs.find(key)
    if rule is None:
        raise _fail(f"no rule {key!r} in the pack or custom folders", 1)
    override = rs.rule_filter.overrides.get(rule.rule_id)
    why = "override" if override is not None else "filters"
    text = rule_text(active_pack_dir(settings.pack_dir), rule.path) if rule.folder != "custom" else None
    if text is None and rule.folder == "custom" and Path(rule.path).is_file():
        text = Path(rule.path).read_text(encoding="utf-8", errors="replace")
    if as_json:
        data = rule.to_json() | {
            "enabled": rs.rule_filter.enabled(rule),
            "enabled_by": why,
            "detections": counts.get(rule.rule_id, {}),
            "query": rule.compiled.where_sql if rule.compiled is not None else None,
            "yaml": text,
        }
        typer.echo(json.dumps(data, default=str))
        return
    lines = [
        f"id: {rule.rule_id}",
        f"title: {rule.title}",
        f"path: {rule.path} ({rule.folder})",
        f"status: {rule.status}  level: {rule.level}",
        f"logsource: product={rule.product or '-'} category={rule.category or '-'} "
        f"service={rule.service or '-'}",
        f"tags: {', '.join(rule.tags)}",
        f"enabled: {rs.rule_filter.enabled(rule)} (by {why})",
        f"detections: {counts.get(rule.rule_id, {})}",
    ]
    if rule.compiled is not None:
        lines.append(f"query: {rule.compiled.where_sql[:2000]}")
        lines.append(f"log source condition: {rule.compiled.logsource_sql} {rule.compiled.logsource_params}")
    else:
        lines.append(f"not runnable ({rule.error_kind}): {rule.error}")
    typer.echo("\n".join(lines))
    if text:
        typer.echo("---\n" + text)


def _override(key: str, enabled: bool | None, siem_path: Path | None, actor: str) -> None:
    settings = get_settings().detection
    siem, state = _state(siem_path)
    with siem:
        rs = rule_set(settings, state)
        rule = rs.find(key)
        if rule is None:
            raise _fail(f"no rule {key!r} in the pack or custom folders", 1)
        if enabled and rule.compiled is None:
            raise _fail(f"rule {rule.rule_id} cannot run ({rule.error_kind}): {rule.error}")
        state.set_override(rule.rule_id, enabled, actor)
    verb = {True: "enabled", False: "disabled", None: "back to the filters"}[enabled]
    err.print(f"rule {rule.rule_id} ({rule.title}) {verb}; takes effect on the next detection pass")


@rules_app.command("enable")
def enable(
    key: Annotated[str, typer.Argument(help="rule id or path")],
    siem_path: SiemPath = None,
    actor: Annotated[str, typer.Option(help="who (recorded)")] = "cli",
) -> None:
    """Enable a rule whatever the filters say (recorded in the store with who and when)."""
    _override(key, True, siem_path, actor)


@rules_app.command("disable")
def disable(
    key: Annotated[str, typer.Argument(help="rule id or path")],
    siem_path: SiemPath = None,
    actor: Annotated[str, typer.Option(help="who (recorded)")] = "cli",
    reset: Annotated[bool, typer.Option("--reset", help="drop the override: the filters decide")] = False,
) -> None:
    """Disable a rule whatever the filters say (``--reset``: let the filters decide again)."""
    _override(key, None if reset else False, siem_path, actor)


def _git_commit(path: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@rules_app.command("update")
def update(
    path: Annotated[Path, typer.Argument(help="SigmaHQ release folder (rules/, rules-*/ inside)")],
    commit: Annotated[str | None, typer.Option(help="the release's commit or tag (default: git)")] = None,
    dest: Annotated[Path | None, typer.Option(help="pack folder (default: detection pack_dir)")] = None,
) -> None:
    """Build a new pack from a SigmaHQ release folder; unchanged rules reuse their cached conversion."""
    if not path.is_dir():
        raise _fail(f"{path}: not a folder")
    settings = get_settings().detection
    target = dest or settings.pack_dir
    cache = ConversionCache(settings.cache_path)
    for source in (active_pack_dir(settings.pack_dir),):
        try:
            from tools.siem.pack import read_pack_rules

            for rule in read_pack_rules(source):
                cache.records.setdefault(rule.content_hash, rule.to_json())
        except SocflowError:
            pass
    try:
        info, rules = build_pack(path, target, commit=commit or _git_commit(path) or "unknown", cache=cache)
    except SocflowError as exc:
        raise _fail(str(exc)) from exc
    kinds = Counter(r.error_kind or "converted" for r in rules)
    err.print(
        f"pack {info.version} written to {target}: {len(rules)} rules; {kinds['converted']} converted, "
        f"{kinds[UNSUPPORTED]} for other log sources, {kinds[FAILED] + kinds[INVALID]} failed "
        f"({cache.hits} reused from the cache, {cache.misses} converted now)",
        markup=False,
    )
    for rule in [r for r in rules if r.error_kind in (FAILED, INVALID)][:50]:
        err.print(f"  - {rule.path}: {rule.error}", markup=False)


# -- tuning --------------------------------------------------------------------------------------------


def _factory() -> sessionmaker[Session]:
    return session_factory(make_engine(get_settings().database.url))


@tuning_app.command("list")
def tuning_list(
    status: Annotated[str | None, typer.Option(help="pending | accepted | declined")] = "pending",
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list instead of NDJSON lines")] = False,
) -> None:
    """Proposals (new ones are offered first, from cases closed as false positive), one JSON line each."""
    from tools.siem.tuning import list_proposals, propose

    settings = get_settings()
    with EmbeddedSiem(settings.siem.path) as siem:
        rs = rule_set(settings.detection, DetectionState(siem))
    fields = {r.rule_id: r.compiled.fields for r in rs.rules if r.compiled is not None}
    factory = _factory()
    created = propose(factory, lambda rule_id: fields.get(rule_id, ()))
    if created:
        err.print(f"{len(created)} new proposals from cases closed as false positive")
    rows = list_proposals(factory, status or None)
    items = [
        {
            "id": p.id,
            "status": p.status,
            "case_id": p.case_id,
            "rule_id": p.rule_id,
            "rule_name": p.rule_name,
            "match": p.match,
            "decided_by": p.decided_by,
        }
        for p in rows
    ]
    if as_json:
        typer.echo(json.dumps(items))
    else:
        for item in items:
            typer.echo(json.dumps(item))
    err.print(f"{len(rows)} proposals")


def _decide(proposal_id: int, accept: bool, actor: str, comment: str | None) -> None:
    from tools.siem.tuning import decide

    try:
        proposal = decide(_factory(), proposal_id, accept=accept, actor=actor, comment=comment)
    except NotFoundError as exc:
        raise _fail(str(exc), 1) from exc
    except ConflictError as exc:
        raise _fail(str(exc), 3) from exc
    effect = "; applies from the next detection pass" if accept else ""
    err.print(f"proposal {proposal.id} ({proposal.rule_id}) {proposal.status} by {actor}{effect}")


@tuning_app.command("accept")
def tuning_accept(
    proposal_id: int,
    actor: Annotated[str, typer.Option(help="who decides (audited)")] = "cli",
    comment: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Accept a proposal: it becomes a suppression (audited)."""
    _decide(proposal_id, True, actor, comment)


@tuning_app.command("decline")
def tuning_decline(
    proposal_id: int,
    actor: Annotated[str, typer.Option(help="who decides (audited)")] = "cli",
    comment: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Decline a proposal (audited)."""
    _decide(proposal_id, False, actor, comment)
