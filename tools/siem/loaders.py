"""Readers for real logs: EVTX (the ``evtx`` wheel), JSON / NDJSON / concatenated JSON, and zip / tar archives
of those (OTRF Security-Datasets).

Each reader yields :class:`Parsed` items: either a normalized event or a skip with a reason naming the
file, archive member, line or record. One bad record never stops the rest of the file.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evtx import PyEvtxParser

from tools.siem.normalize import normalize_event

EVTX_SUFFIXES = (".evtx",)
JSON_SUFFIXES = (".json", ".ndjson", ".jsonl")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
#: Files that are simply not logs (metadata beside the samples); skipped silently but counted.
IGNORED_SUFFIXES = (".yml", ".yaml", ".md", ".txt", ".csv")
MAX_ERRORS_IN_A_ROW = 1000


@dataclass(frozen=True, slots=True)
class Parsed:
    source: str
    event: dict[str, Any] | None = None
    skip_reason: str | None = None


def _suffix(path: str) -> str:
    lower = path.lower()
    for suffix in (*ARCHIVE_SUFFIXES, *EVTX_SUFFIXES, *JSON_SUFFIXES):
        if lower.endswith(suffix):
            return suffix
    return Path(lower).suffix


def discover(paths: Iterable[Path]) -> list[Path]:
    """All files under the given files/directories, sorted, hidden files excluded."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
        else:
            found.append(path)
    return found


def read_evtx(path: Path) -> Iterator[Parsed]:
    name = str(path)
    try:
        parser = PyEvtxParser(name)
    except (OSError, RuntimeError, ValueError) as exc:
        yield Parsed(name, skip_reason=f"not a readable EVTX file: {exc}")
        return
    records = parser.records_json()
    index = produced = errors_in_a_row = 0
    while errors_in_a_row < MAX_ERRORS_IN_A_ROW:
        index += 1
        try:
            record = next(records)
        except StopIteration:
            break
        except (OSError, RuntimeError, ValueError) as exc:
            errors_in_a_row += 1
            yield Parsed(f"{name} record {index}", skip_reason=f"malformed EVTX record: {exc}")
            continue
        errors_in_a_row = 0
        try:
            if record is None:
                raise ValueError("empty record")
            data = json.loads(record["data"])
        except (KeyError, TypeError, ValueError) as exc:
            yield Parsed(f"{name} record {index}", skip_reason=f"bad JSON: {exc}")
            continue
        produced += 1
        yield Parsed(name, event=normalize_event(data))
    if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
        yield Parsed(name, skip_reason=f"gave up after {MAX_ERRORS_IN_A_ROW} malformed records in a row")
    elif produced == 0 and index <= 1:
        yield Parsed(name, skip_reason="no EVTX records (empty or truncated file)")


def parse_json_text(text: str, name: str) -> Iterator[Parsed]:
    """JSON lines, one JSON document, a JSON array, or concatenated (pretty-printed) JSON objects."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    line, line_pos = 1, 0  # line number of ``line_pos``, advanced lazily
    # JSON lines: a broken record ends at its own line end; pretty-printed documents: where parsing failed.
    line_mode = name.lower().endswith((".ndjson", ".jsonl"))
    first = True

    def line_at(target: int) -> int:
        nonlocal line, line_pos
        line += text.count("\n", line_pos, target)
        line_pos = target
        return line

    while True:
        while pos < end and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= end:
            return
        try:
            doc, new_pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield Parsed(f"{name}:{line_at(pos)}", skip_reason=f"malformed or truncated JSON: {exc.msg}")
            next_line = text.find("\n", pos if line_mode else max(exc.pos, pos + 1))
            if next_line < 0:
                return
            pos = next_line + 1
            continue
        if first:
            line_mode = line_mode or "\n" not in text[pos:new_pos]
            first = False
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if isinstance(item, dict):
                yield Parsed(name, event=normalize_event(item))
            else:
                yield Parsed(f"{name}:{line_at(pos)}", skip_reason="JSON value is not an object")
        pos = new_pos


def read_json(path: Path) -> Iterator[Parsed]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        yield Parsed(str(path), skip_reason=f"cannot read: {exc}")
        return
    yield from parse_json_text(text, str(path))


def _member_events(name: str, data: bytes) -> Iterator[Parsed]:
    if _suffix(name) in JSON_SUFFIXES:
        yield from parse_json_text(data.decode("utf-8-sig", errors="replace"), name)
    else:
        yield Parsed(name, skip_reason="unsupported archive member type")


def read_archive(path: Path) -> Iterator[Parsed]:
    name = str(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.is_dir() or "__MACOSX" in info.filename:
                        continue
                    yield from _member_events(f"{name}!{info.filename}", archive.read(info))
            return
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    yield from _member_events(f"{name}!{member.name}", handle.read())
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        yield Parsed(name, skip_reason=f"unreadable archive: {exc}")


def read_path(path: Path) -> Iterator[Parsed]:
    """Events of one file, dispatched on its suffix."""
    suffix = _suffix(path.name)
    if suffix in EVTX_SUFFIXES:
        yield from read_evtx(path)
    elif suffix in JSON_SUFFIXES:
        yield from read_json(path)
    elif suffix in ARCHIVE_SUFFIXES:
        yield from read_archive(path)
    elif suffix in IGNORED_SUFFIXES:
        yield Parsed(str(path), skip_reason="not a log file")
    else:
        yield Parsed(str(path), skip_reason=f"unsupported file type {suffix or '(none)'}")
