"""The composition root: the only platform module that imports ``tools``, ``workflows`` and ``workers``.

It turns settings into run dependencies and exposes the tools' command-line groups to the CLI.
"""

from __future__ import annotations

import typer


def cli_groups() -> list[tuple[str, typer.Typer]]:
    """Command groups contributed by tools (``socflow attack ...``, ``socflow siem ...``)."""
    groups: list[tuple[str, typer.Typer]] = []
    return groups
