"""``socflow intel``: load indicator files into the local store, list them, match values against them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from socflow.cli_output import console, emit_json, err, json_option, row_json
from socflow.db import make_engine, session_factory
from socflow.errors import InputError
from socflow.settings import get_settings
from tools.intel import store
from tools.intel.formats import MAX_INDICATORS, parse_file
from tools.intel.indicators import IndicatorType, guess_type, normalize

app = typer.Typer(no_args_is_help=True)


def _factory() -> sessionmaker[Session]:
    settings = get_settings()
    return session_factory(make_engine(settings.database.url, echo=settings.database.echo))


@app.command("load")
def load_command(
    path: Annotated[Path, typer.Argument(help="A STIX 2.1 bundle, MISP event JSON or feed folder, or CSV.")],
    fmt: Annotated[
        Literal["auto", "stix", "misp", "csv"],
        typer.Option("--format", help="The file's format (auto: by suffix and JSON shape)."),
    ] = "auto",
    source: Annotated[
        str | None,
        typer.Option("--source", help="The feed's name on its indicators (default: the file name)."),
    ] = None,
    as_json: json_option = False,
) -> None:
    """Load indicators from a feed file (values validated; a value loaded again updates its row)."""
    name = (source or path.stem or "feed").strip()[:100]
    try:
        report = parse_file(path, fmt, source=name)
    except InputError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from exc
    with _factory()() as session, session.begin():
        result = store.load(session, report, actor="cli")
    summary = {
        "file": str(path),
        "format": report.format,
        "source": name,
        "indicators": len(report.indicators),
        "added": result.added,
        "updated": result.updated,
        "skipped": report.skipped,
        "truncated": report.truncated,
        "reasons": report.reasons,
    }
    if as_json:
        emit_json(summary)
        return
    console.print(
        f"{path}: {report.format}, {len(report.indicators)} indicators ({result.added} new, "
        f"{result.updated} updated), {report.skipped} skipped"
        + (f"; stopped at the {MAX_INDICATORS}-indicator limit" if report.truncated else ""),
        highlight=False,
        markup=False,
    )
    for reason in report.reasons:
        err.print(f"  skipped: {reason}", highlight=False, markup=False)


@app.command("list")
def list_command(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    kind: Annotated[IndicatorType | None, typer.Option("--type", help="Only this type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: json_option = False,
) -> None:
    """List stored indicators, newest first."""
    with _factory()() as session:
        total, rows = store.search(session, source=source, kind=kind, limit=limit, offset=offset)
        if as_json:
            emit_json({"total": total, "items": [row_json(r) for r in rows]})
            return
        table = Table("type", "value", "source", "conf", "description", title=f"indicators ({total})")
        for r in rows:
            table.add_row(r.type, r.value, r.source, str(r.confidence or "-"), (r.description or "")[:60])
        console.print(table)


@app.command("match")
def match_command(
    values: Annotated[list[str], typer.Argument(help="Values to look up (type guessed: IP, hash, URL...).")],
    as_json: json_option = False,
) -> None:
    """Look values up in the local store. Exit code 1 when nothing matched."""
    pairs: list[tuple[IndicatorType, str]] = []
    for value in values[:1000]:
        kind = guess_type(value)
        if kind is None:
            err.print(
                f"not an IP, domain, URL, hash or e-mail: {value[:100]!r}", highlight=False, markup=False
            )
            continue
        pairs.append((kind, normalize(kind, value)))
    with _factory()() as session:
        rows = store.match(session, pairs)
        if as_json:
            emit_json({"matches": [row_json(r) for r in rows]})
        else:
            table = Table("type", "value", "source", "conf", "description", title="matches")
            for r in rows:
                table.add_row(r.type, r.value, r.source, str(r.confidence or "-"), (r.description or "")[:80])
            console.print(table if rows else "no match")
    if not rows:
        raise typer.Exit(1)
