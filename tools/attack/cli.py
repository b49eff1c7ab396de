"""``socflow attack``: catalog info, id lookup and text mapping (registered by socflow/wiring.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from socflow.cli_output import console as _out
from socflow.cli_output import err as _err
from socflow.errors import AttackError
from tools.attack.catalog import DeprecatedTechniqueError, load_catalog
from tools.attack.retrieval import get_index

app = typer.Typer(help="MITRE ATT&CK catalog: info, lookup, map.", no_args_is_help=True)


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Catalog version and counts."""
    catalog = load_catalog()
    counts = catalog.counts()
    if as_json:
        payload = {"domain": catalog.domain, "attack_version": catalog.version, "counts": counts}
        typer.echo(json.dumps(payload, indent=2))
        return
    _out.print(f"ATT&CK {catalog.domain} v{catalog.version}")
    for key, value in counts.items():
        _out.print(f"  {key}: {value}")
    _out.print(catalog.attribution, style="dim")


@app.command()
def lookup(
    technique_id: Annotated[str, typer.Argument(help="e.g. T1059.001, attack.t1003.001, a v19 id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One technique; revoked ids and SigmaHQ v19 ids resolve to the current v18.1 technique."""
    catalog = load_catalog()
    note = ""
    try:
        tech = catalog.resolve(technique_id)
    except DeprecatedTechniqueError:
        tech, note = catalog.lookup(technique_id), "deprecated, no replacement"
    except AttackError as exc:
        _err.print(f"error [{exc.code}]: {exc}", markup=False)
        raise typer.Exit(2) from None
    payload = {
        "id": tech.id,
        "requested": technique_id,
        "status": note or "active",
        "name": tech.name,
        "tactics": catalog.tactic_names(tech),
        "platforms": tech.platforms,
        "parent_id": tech.parent_id,
        "url": tech.url,
        "data_components": tech.data_components,
        "mitigations": [m.id + " " + m.name for m in tech.mitigations],
        "description": tech.description,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    _out.print(f"[bold]{tech.id}[/bold] {tech.name}  ({', '.join(payload['tactics'])})")  # type: ignore[arg-type]
    if note:
        _out.print(f"  {note}")
    if tech.id != technique_id.strip().upper():
        _out.print(f"  resolved from {technique_id}")
    _out.print(f"  {tech.url}")
    _out.print(f"  platforms: {', '.join(tech.platforms)}")
    _out.print(f"  data components: {', '.join(tech.data_components) or '-'}")
    _out.print(tech.description.split("\n\n")[0], markup=False)


@app.command("map")
def map_text(
    text: Annotated[str, typer.Argument(help="alert or detection text")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=50)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Ranked retrieval candidates for free text (no model)."""
    hits = get_index().search(text, top)
    if as_json:
        typer.echo(json.dumps([h.model_dump() for h in hits], indent=2))
        return
    table = Table("rank", "id", "name", "tactics", "score")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), hit.id, hit.name, ", ".join(hit.tactics), f"{hit.score:.2f}")
    _out.print(table)
