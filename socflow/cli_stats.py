"""``socflow stats``: the SOC dashboard's figures on the command line (``--json`` for machines)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from socflow.cli_output import console, emit_json, err, json_option
from socflow.db import make_engine, session_factory
from socflow.errors import SocflowError
from socflow.settings import get_settings
from socflow.soc_metrics import RANGES, TimeRange, soc_metrics


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def stats_command(
    range_: Annotated[str, typer.Option("--range", help=f"One of {', '.join(RANGES)} (ending now).")] = "7d",
    since: Annotated[datetime | None, typer.Option(help="Start of a custom range (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="End of a custom range (UTC, default now).")] = None,
    as_json: json_option = False,
) -> None:
    """How the SOC is doing: times to acknowledge and decide, case counts, auto-close rate, agreement."""
    try:
        settings = get_settings()
        tr = TimeRange.parse(range_, since, until)
        with session_factory(make_engine(settings.database.url))() as session:
            figures = soc_metrics(session, tr)
    except SocflowError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        emit_json(figures)
        return
    _print(figures)


def _print(f: dict[str, Any]) -> None:
    r = f["range"]
    console.print(f"SOC figures {r['since']} .. {r['until']}", markup=False, highlight=False)
    times = Table("measure", "count", "mean", "p50", "p90", "p95", title="times")
    for name in ("time_to_acknowledge", "time_to_decide"):
        d = f[name]
        times.add_row(
            name.replace("_", " "),
            str(d["count"]),
            _seconds(d["mean_seconds"]),
            _seconds(d["p50_seconds"]),
            _seconds(d["p90_seconds"]),
            _seconds(d["p95_seconds"]),
        )
    console.print(times)
    cases = Table("group", "value", "cases", title=f"cases opened: {f['cases']['opened']}")
    for group in ("by_status", "by_severity", "by_verdict"):
        for key, n in f["cases"][group].items():
            cases.add_row(group.removeprefix("by_"), key, str(n))
    console.print(cases)
    console.print(
        f"auto-close rate {_share(f['auto_close']['rate'])} "
        f"({f['auto_close']['closed_automatically']} cases); "
        f"agreement with the model {_share(f['agreement']['rate'])} "
        f"({f['agreement']['agreeing']} of {f['agreement']['decisions']} decisions); "
        f"alerts {f['alerts']['received']}; model calls {f['model']['calls']}, tokens {f['model']['tokens']}",
        markup=False,
        highlight=False,
    )
