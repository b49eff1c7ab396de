"""Discovery: built-ins, SOCFLOW_WORKFLOWS__PATHS folders and the ``socflow.workflows`` entry points."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from socflow import registry as registry_module
from socflow.registry import WorkflowLoadError, discover

SPEC_MODULE = textwrap.dedent(
    """
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from socflow.sdk import RunContext, WorkflowSpec


    class State(TypedDict, total=False):
        case_id: int | None
        done: bool


    def finish(state, runtime):
        return {"done": True}


    def build():
        g = StateGraph(State, context_schema=RunContext)
        g.add_node("finish", finish)
        g.add_edge(START, "finish")
        g.add_edge("finish", END)
        return g


    SPEC = WorkflowSpec(name="NAME", version="1.0.0", description="NAME", build=build, needs_case=False)
    """
)


def write_package(root: Path, module: str, body: str) -> None:
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(body, encoding="utf-8")


def write_dist(root: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A throwaway installed distribution: importlib.metadata finds ``*.dist-info`` on sys.path."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[socflow.workflows]\n{lines}", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder with one good and one broken plugin distribution, on sys.path for this test."""
    root = tmp_path / "site"
    root.mkdir()
    write_package(root, "sfx_good_plugin", SPEC_MODULE.replace("NAME", "plugin_flow"))
    write_package(root, "sfx_broken_plugin", "raise RuntimeError('plugin import exploded')\n")
    write_dist(root, "sfx_good_plugin", {"plugin_flow": "sfx_good_plugin:SPEC"})
    write_dist(root, "sfx_broken_plugin", {"broken_flow": "sfx_broken_plugin:SPEC"})
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in ("sfx_good_plugin", "sfx_broken_plugin"):
        sys.modules.pop(name, None)


def test_built_ins_are_discovered() -> None:
    registry = discover(entry_points=False)
    assert {"alert_triage", "incident_report", "log_triage"} <= set(registry.names())
    assert registry.origins["log_triage"] == "workflows.log_triage"
    assert not registry.get("log_triage").needs_case


def test_entry_point_plugin_is_discovered_and_a_broken_one_skipped_with_a_log_line(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="socflow.registry"):
        registry = discover()
    assert "plugin_flow" in registry.names()
    assert registry.origins["plugin_flow"].startswith("entry point plugin_flow")
    assert "broken_flow" not in registry.names()
    assert [o for o, _ in registry.skipped] == ["entry point broken_flow (sfx_broken_plugin:SPEC)"]
    assert any(
        "broken_flow" in r.getMessage() and "plugin import exploded" in r.getMessage() for r in caplog.records
    )


def test_workflow_list_in_a_new_process_shows_the_plugin_and_the_skipped_one(
    site: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "socflow", "workflow", "list"],
        capture_output=True,
        text=True,
        env=env | {"COLUMNS": "200"},
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "plugin_flow" in out.stdout and "alert_triage" in out.stdout
    assert "skipped entry point broken_flow" in out.stderr and "plugin import exploded" in out.stderr


def test_folder_plugins_load_and_broken_ones_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "extra"
    write_package(folder, "sfx_folder_flow", SPEC_MODULE.replace("NAME", "folder_flow"))
    write_package(folder, "sfx_not_a_workflow", "X = 1\n")
    try:
        registry = discover([folder], entry_points=False)
    finally:
        for name in ("sfx_folder_flow", "sfx_not_a_workflow"):
            sys.modules.pop(name, None)
        sys.path.remove(str(folder.resolve()))
    assert "folder_flow" in registry.names()
    assert len(registry.skipped) == 1 and "does not export a WorkflowSpec" in registry.skipped[0][1]


def test_a_broken_built_in_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(tmp_path, "sfx_builtins", "")
    write_package(tmp_path / "sfx_builtins", "bad_flow", "raise ImportError('missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "BUILTIN_PACKAGE", "sfx_builtins")
    try:
        with pytest.raises(ImportError, match="missing dependency"):
            discover(entry_points=False)
        write_package(tmp_path / "sfx_builtins", "bare_flow", "X = 1\n")
        (tmp_path / "sfx_builtins" / "bad_flow" / "__init__.py").write_text(
            SPEC_MODULE.replace("NAME", "ok_flow"), encoding="utf-8"
        )
        sys.modules.pop("sfx_builtins.bad_flow", None)
        with pytest.raises(WorkflowLoadError, match="bare_flow"):
            discover(entry_points=False)
    finally:
        for name in [m for m in sys.modules if m.startswith("sfx_builtins")]:
            sys.modules.pop(name, None)
