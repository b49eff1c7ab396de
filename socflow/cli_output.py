"""What every ``socflow`` command prints goes through here: one output helper for the whole CLI.

- ``console`` (stdout) and ``err`` (stderr) are :class:`SafeConsole`: every piece of text they write has
  its control characters escaped (C0 but newline and tab, DEL, C1, ESC sequences such as CSI and OSC 8
  links, and the Unicode bidi controls), so an attacker-controlled alert title can neither clear the
  screen, forge a hyperlink nor reorder a line. The console's own colours are styles, not text, and stay.
- A :class:`rich.table.Table` printed to something that is not a terminal comes out plain: a header line
  and one tab-separated line per row, never wrapped or truncated (``socflow cases list | cat``).
- ``emit_json`` prints one JSON document (``--json``): non-ASCII and control characters as ``\\uXXXX``.
- ``json_option`` is the ``--json`` flag every command that lists or shows accepts.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from sqlalchemy import inspect as sa_inspect

from socflow.store import CaseStore
from socflow.tables import Case

__all__ = [
    "SafeConsole",
    "case_detail_json",
    "case_json",
    "console",
    "emit_json",
    "err",
    "escape_controls",
    "json_option",
    "plain_table",
    "row_json",
]

# C0 but \t and \n, DEL, C1, the bidi embeddings/overrides/isolates and marks, line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible escape (``ESC`` -> ``\\x1b``)."""
    return _CONTROL.sub(_escape_one, text)


json_option = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _cell(value: RenderableType) -> str:
    if isinstance(value, Text):
        return value.plain
    return str(value)


def plain_table(table: Table) -> str:
    """A table as a header line and tab-separated rows (tabs and newlines in cells become spaces)."""
    columns = table.columns
    rows = [[_cell(c.header) for c in columns]]
    for i in range(table.row_count):
        rows.append([_cell(list(c.cells)[i]) if i < len(list(c.cells)) else "" for c in columns])
    return "\n".join(
        "\t".join(escape_controls(re.sub(r"[\t\r\n]+", " ", cell)) for cell in row) for row in rows
    )


class SafeConsole(Console):
    """A rich console whose text segments are escaped and whose tables are plain when not a terminal."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            seg if seg.control else Segment(escape_controls(seg.text), seg.style, seg.control)
            for seg in buffer
        )
        return super()._render_buffer(safe)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.is_terminal and any(isinstance(o, Table) for o in objects):
            for obj in objects:  # written as is: rich would expand the tabs
                text = plain_table(obj) if isinstance(obj, Table) else escape_controls(str(obj))
                self.file.write(text + "\n")
            self.file.flush()
            return
        super().print(*objects, **kwargs)


console = SafeConsole(soft_wrap=True)
err = SafeConsole(stderr=True, soft_wrap=True)


def row_json(row: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table row's columns as JSON-plain values (datetimes as ISO 8601)."""
    out: dict[str, Any] = {}
    for attr in sa_inspect(row).mapper.column_attrs:
        if attr.key in exclude:
            continue
        value = getattr(row, attr.key)
        out[attr.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def case_json(case: Case) -> dict[str, Any]:
    return row_json(case)


def case_detail_json(store: CaseStore, case: Case) -> dict[str, Any]:
    """``socflow cases show --json``: the case, its alerts, observables, current note and audit trail."""
    note = store.get_note(case.id)
    note_json: dict[str, Any] | None = None
    if note is not None:
        rev = store.get_current_revision(note)
        note_json = {
            "id": note.id,
            "kind": note.kind,
            "status": note.status,
            "revision": rev.revision,
            "author": rev.author,
            "body": rev.body,
            "stale_at": note.stale_at.isoformat() if note.stale_at else None,
        }
    return {
        **case_json(case),
        "alerts": [row_json(a) for a in store.list_alerts(case_id=case.id)],
        "observables": [{"type": o.type, "value": o.value} for o in store.list_observables(case_id=case.id)],
        "note": note_json,
        "audit": [row_json(e) for e in store.list_audit(case_id=case.id)],
    }


def emit_json(payload: Any) -> None:
    """Print ``payload`` as one JSON document on stdout (datetimes and other objects as strings)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str, ensure_ascii=True) + "\n")
    sys.stdout.flush()
