"""``socflow workflow new``: scaffold a workflow package from the templates shipped next to this module.

The package holds ``state.py``, ``nodes.py``, ``graph.py``, ``prompts.py``, ``__init__.py`` exporting
``SPEC``, and ``tests/test_<name>.py``, which passes as generated (scripted model, temporary SQLite).
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template

from socflow.errors import InputError

NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
RESERVED = frozenset({"socflow", "tools", "workflows", "workers", "tests", "test"})
FILES = {
    "__init__.py.tmpl": "__init__.py",
    "state.py.tmpl": "state.py",
    "nodes.py.tmpl": "nodes.py",
    "graph.py.tmpl": "graph.py",
    "prompts.py.tmpl": "prompts.py",
    "tests/__init__.py.tmpl": "tests/__init__.py",
    "tests/test_workflow.py.tmpl": "tests/test_${name}.py",
}


class ScaffoldError(InputError):
    code = "scaffold_error"
    exit_code = 2


class ScaffoldExists(ScaffoldError):
    code = "scaffold_exists"
    exit_code = 1


def check_name(name: str) -> str:
    if not NAME.match(name) or len(name) > 60:
        raise ScaffoldError(
            "a workflow name is a lowercase Python identifier such as phishing_triage", field="name"
        )
    if keyword.iskeyword(name) or name in RESERVED:
        raise ScaffoldError(f"{name!r} is reserved", field="name")
    return name


def render(template: str, name: str) -> str:
    title = name.replace("_", " ")
    class_name = "".join(part.capitalize() for part in name.split("_"))
    return Template(template).substitute(name=name, title=title, class_name=class_name)


def scaffold_workflow(name: str, dest: Path) -> Path:
    """Write the package ``dest/name``; returns its folder. Refuses to touch an existing path."""
    check_name(name)
    target = Path(dest).expanduser() / name
    if target.exists():
        raise ScaffoldExists(f"{target} already exists", field="name")
    templates = resources.files(__package__).joinpath("templates")
    rendered = {
        Template(out).substitute(name=name): render(templates.joinpath(src).read_text(encoding="utf-8"), name)
        for src, out in FILES.items()
    }
    for rel, text in rendered.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


__all__ = ["ScaffoldError", "ScaffoldExists", "check_name", "scaffold_workflow"]
