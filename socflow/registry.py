"""Workflow discovery: built-ins in the ``workflows`` package, extra folders (``SOCFLOW_WORKFLOWS__PATHS``)
and installed packages (entry-point group ``socflow.workflows``). No central list to edit.

A broken built-in fails loudly; a broken plugin is logged and skipped.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from socflow.errors import NotFoundError, SocflowError
from socflow.sdk import WorkflowSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "socflow.workflows"
BUILTIN_PACKAGE = "workflows"


class WorkflowLoadError(SocflowError):
    code = "workflow_load_error"


def _spec_of(obj: Any, origin: str) -> WorkflowSpec:
    spec = getattr(obj, "SPEC", obj) if isinstance(obj, ModuleType) else obj
    if callable(spec) and not isinstance(spec, WorkflowSpec):
        spec = spec()
    if not isinstance(spec, WorkflowSpec):
        raise WorkflowLoadError(f"{origin} does not export a WorkflowSpec named SPEC")
    return spec


class WorkflowRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, WorkflowSpec] = {}
        self.origins: dict[str, str] = {}
        self.skipped: list[tuple[str, str]] = []

    @classmethod
    def of(cls, *specs: WorkflowSpec, origin: str = "test") -> WorkflowRegistry:
        """A registry holding exactly ``specs`` (tests, embedding)."""
        registry = cls()
        for spec in specs:
            registry.add(spec, origin)
        return registry

    def add(self, spec: WorkflowSpec, origin: str, *, replace: bool = False) -> None:
        if spec.name in self._specs and not replace:
            raise WorkflowLoadError(
                f"workflow {spec.name!r} from {origin} clashes with {self.origins[spec.name]}"
            )
        self._specs[spec.name] = spec
        self.origins[spec.name] = origin

    def get(self, name: str) -> WorkflowSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise NotFoundError(f"no workflow named {name!r} (known: {', '.join(self.names())})") from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[WorkflowSpec]:
        return [self._specs[n] for n in self.names()]


def _skip(registry: WorkflowRegistry, origin: str, exc: BaseException) -> None:
    log.warning("skipping workflow plugin %s: %s: %s", origin, type(exc).__name__, exc)
    registry.skipped.append((origin, f"{type(exc).__name__}: {exc}"))


def discover(extra_paths: Iterable[Path] = (), *, entry_points: bool = True) -> WorkflowRegistry:
    registry = WorkflowRegistry()
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.ispkg and not info.name.startswith("_"):
            name = f"{BUILTIN_PACKAGE}.{info.name}"
            registry.add(_spec_of(importlib.import_module(name), name), name)  # broken built-in: raises
    for folder in extra_paths:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            _skip(registry, str(folder), FileNotFoundError("not a folder"))
            continue
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        for child in sorted(folder.iterdir()):
            if not (child / "__init__.py").is_file() or child.name.startswith((".", "_")):
                continue
            origin = str(child)
            try:
                registry.add(_spec_of(importlib.import_module(child.name), origin), origin)
            except Exception as exc:  # a broken plugin must not take the platform down
                _skip(registry, origin, exc)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {ep.name} ({ep.value})"
            try:
                registry.add(_spec_of(ep.load(), origin), origin)
            except Exception as exc:  # a broken plugin must not take the platform down
                _skip(registry, origin, exc)
    return registry
