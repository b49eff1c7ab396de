"""``socflow workflow``: list, graph, run and scaffold graph workflows."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from socflow import wiring
from socflow.settings import get_settings

app = typer.Typer(help="Graph workflows: list, graph, run, new.", no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command("list")
def workflow_list() -> None:
    """Registered workflows (built-ins, SOCFLOW_WORKFLOWS__PATHS folders, entry points)."""
    registry = wiring.build_registry(get_settings())
    table = Table("name", "version", "queue", "origin", "description", title="workflows")
    for spec in registry.specs():
        table.add_row(spec.name, spec.version, spec.queue, registry.origins[spec.name], spec.description)
    console.print(table)
    for origin, why in registry.skipped:
        err.print(f"skipped {origin}: {why}", markup=False)
