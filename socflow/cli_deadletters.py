"""``socflow deadletters list``: the ingest items a door refused, newest first."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from socflow.db import make_engine, session_factory
from socflow.deadletters import list_dead_letters
from socflow.errors import SocflowError
from socflow.settings import get_settings

app = typer.Typer(help="Refused ingest items: what senders got wrong.", no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str | None, limit: int = 400) -> str:
    """Alert text for a terminal: control, escape and bidi characters shown as ``\\xNN``, cut short."""
    if text is None:
        return "-"
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("list")
def list_command(
    door: Annotated[str | None, typer.Option(help="Only this door (api, cli, connector, ...).")] = None,
    source: Annotated[str | None, typer.Option(help="Only this claimed source.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document: total and rows.")] = False,
) -> None:
    """The newest refused items: when, door, source, position, reason and the payload's start."""
    try:
        settings = get_settings()
    except SocflowError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    engine = make_engine(settings.database.url)
    try:
        with session_factory(engine)() as session:
            total, rows = list_dead_letters(session, door=door, source=source, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        items = []
        for r in rows:
            items.append(
                {
                    "id": r.id,
                    "at": r.at.isoformat(),
                    "door": r.door,
                    "actor": r.actor,
                    "source": r.source,
                    "index": r.item_index,
                    "line": r.line,
                    "field": r.field,
                    "reason": r.reason,
                    "payload": r.payload,
                }
            )
        console.print(
            json.dumps({"total": total, "rows": items}), markup=False, highlight=False, soft_wrap=True
        )
        return
    table = Table(title=f"dead letters ({len(rows)} of {total})")
    for column in ("id", "at", "door", "source", "item", "reason", "payload"):
        table.add_column(column)
    for r in rows:
        where = f"line {r.line}" if r.line is not None else f"item {r.item_index}"
        reason = f"{r.field}: {r.reason}" if r.field else r.reason
        table.add_row(
            str(r.id),
            f"{r.at:%Y-%m-%d %H:%M:%S}",
            Text(printable(r.door, 32)),
            Text(printable(r.source, 60)),
            where,
            Text(printable(reason, 200)),
            Text(printable(r.payload, 120)),
        )
    console.print(table)
