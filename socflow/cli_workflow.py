"""``socflow workflow``: list, graph, run and scaffold graph workflows.

Exit codes: 0 done (a run that waits for an analyst is done for now), 1 the run failed or what was named
does not exist, 2 bad usage or input (one line naming the field and the reason).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from socflow import wiring
from socflow.cli_output import console, emit_json, err, json_option
from socflow.errors import ConflictError, InputError, NotFoundError, SocflowError
from socflow.graph_svg import graph_shape
from socflow.ingest import validation_reason
from socflow.registry import WorkflowRegistry
from socflow.runner import RunStatus
from socflow.scaffold import ScaffoldError, scaffold_workflow
from socflow.sdk import WorkflowSpec
from socflow.settings import Settings, get_settings
from socflow.store import CaseStore

app = typer.Typer(help="Graph workflows: list, graph, run, new.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return get_settings()
    except SocflowError as exc:
        raise _fail(str(exc)) from exc


def _spec(registry: WorkflowRegistry, name: str) -> WorkflowSpec:
    try:
        return registry.get(name)
    except NotFoundError as exc:
        raise _fail(str(exc), 1) from exc


@app.command("list")
def workflow_list(as_json: json_option = False) -> None:
    """Registered workflows (built-ins, SOCFLOW_WORKFLOWS__PATHS folders, entry points)."""
    registry = wiring.build_registry(_settings())
    if as_json:
        emit_json(
            {
                "workflows": [
                    {
                        "name": spec.name,
                        "version": spec.version,
                        "queue": spec.queue,
                        "origin": registry.origins[spec.name],
                        "description": spec.description,
                    }
                    for spec in registry.specs()
                ],
                "skipped": [{"origin": origin, "reason": why} for origin, why in registry.skipped],
            }
        )
        return
    table = Table("name", "version", "queue", "origin", "description", title="workflows")
    for spec in registry.specs():
        table.add_row(spec.name, spec.version, spec.queue, registry.origins[spec.name], spec.description)
    console.print(table)
    for origin, why in registry.skipped:
        err.print(f"skipped {origin}: {why}", markup=False)


@app.command("graph")
def workflow_graph(
    name: Annotated[str, typer.Argument(help="Workflow name.")], as_json: json_option = False
) -> None:
    """The workflow's graph as a Mermaid diagram (paste into Markdown inside a mermaid fence)."""
    spec = _spec(wiring.build_registry(_settings()), name)
    if as_json:
        emit_json({"name": spec.name, "version": spec.version, **graph_shape(spec)})
        return
    typer.echo(spec.mermaid(), nl=False)


def read_input(path: Path) -> dict[str, Any]:
    """A JSON object, or any other text as ``{"lines": [...]}`` (one log line per line)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file", field="--input")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text", field="--input") from exc
    try:
        data = json.loads(text)
    except ValueError:
        return {"lines": text.splitlines()}
    if isinstance(data, list):
        return {"lines": [str(x) for x in data]}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a JSON input must be an object", field="--input")
    return data


@app.command("run")
def workflow_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    case: Annotated[int | None, typer.Option("--case", help="Run on this case.")] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="JSON input (checked by the workflow's input schema), or a text file."),
    ] = None,
    user: Annotated[str, typer.Option("--user", help="Who starts the run (audit).")] = "cli",
) -> None:
    """Start a run and advance it in-process to its next interrupt or its end; print the outcome."""
    settings = _settings()
    registry = wiring.build_registry(settings)
    spec = _spec(registry, name)
    if spec.needs_case and case is None:
        raise _fail(f"{name} runs on a case: pass --case ID")
    if not spec.needs_case and case is not None and input_file is None and spec.input_schema is not None:
        raise _fail(f"{name} takes its input from a file: pass --input FILE")
    try:
        data = read_input(input_file) if input_file is not None else {}
        spec.initial_state(case, data)  # validate before anything is written
    except InputError as exc:
        raise _fail(str(exc)) from exc
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise _fail(f"input {field}: {reason}" if field else f"input: {reason}") from exc
    runner = wiring.cli_services(ctx, settings, dispatcher="inline").runner
    if case is not None:
        try:
            with runner.factory() as session:
                CaseStore(session).get_case(case)
        except NotFoundError as exc:
            raise _fail(str(exc), 1) from exc
    try:
        run_id = runner.start(name, case_id=case, actor=user, data=data)
    except ConflictError as exc:
        raise _fail(str(exc)) from exc
    result = runner.advance(run_id)
    console.print(f"run {run_id} ({name} {spec.version}): {result.status}", highlight=False)
    if result.status is RunStatus.failed:
        run = runner.get(run_id)
        raise _fail(f"{run.error_kind}: {run.error}", 1)
    if result.status is RunStatus.awaiting_input:
        typer.echo(json.dumps(result.interrupt, indent=2, default=str))
        if case is not None:
            console.print(f"decide with: socflow approve {case} --approve | --edit FILE | --reject ...")
        return
    if spec.output_keys:
        state = spec.read_state(runner.db_url, run_id)
        out = {k: state.get(k) for k in spec.output_keys}
        typer.echo(json.dumps(out, indent=2, default=str))


@app.command("new")
def workflow_new(
    name: Annotated[str, typer.Argument(help="Package name, <subject>_<job> (e.g. phishing_triage).")],
    dest: Annotated[Path, typer.Option("--dest", help="Folder to create the package in.")] = Path("."),
) -> None:
    """Scaffold a working workflow package: state, nodes, graph, prompts, spec and a passing test."""
    try:
        target = scaffold_workflow(name, dest)
    except ScaffoldError as exc:
        raise _fail(str(exc), exc.exit_code) from exc
    folder = target.parent.resolve()
    console.print(f"created {target}", highlight=False)
    console.print(
        f"next: pytest {target}  ·  SOCFLOW_WORKFLOWS__PATHS='[\"{folder}\"]' socflow workflow list",
        highlight=False,
        markup=False,
    )
