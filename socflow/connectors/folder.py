"""A drop folder: ``*.json`` / ``*.ndjson`` files put in ``path`` are ingested, then moved.

- every item stored or already known (duplicate) -> the file moves to ``processed/``;
- some items were rejected -> it moves to ``failed/`` with ``<name>.error`` beside it, one line per
  problem (line or item number, field, reason). Items that were good are stored anyway (each item is read,
  cleaned and checked on its own: a NaN, a 5,000-digit number or nesting past 32 levels refuses that item
  only; invalid UTF-8 bytes become U+FFFD); refused items are kept as dead letters when a ``dead_letter``
  hook is given. Fix the file and drop it again: what was stored before comes back as duplicates.
- the ingest callback itself fails (database down) -> the file stays where it is and is tried next poll.

Files are moved only after their alerts are committed, so nothing is lost; a crash between the commit and
the move re-reads the file once, and ingest idempotency makes that store nothing. Writers should drop files
atomically (write ``name.json.tmp``, then rename): hidden files, other suffixes and files modified less than
``settle_seconds`` ago are left alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socflow.connectors.base import Connector, IngestFn, PollResult, submit
from socflow.ingest import IDENTIFIERS, Refusal, parse_payload
from socflow.untrusted import UnsafeJSON, clean_json

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".ndjson")
PROCESSED = "processed"
FAILED = "failed"


class FolderWatcher(Connector):
    def __init__(
        self,
        path: Path | str,
        ingest: IngestFn,
        *,
        name: str = "folder",
        fmt: str = "auto",
        field_map: Mapping[str, str] | None = None,
        source: str | None = None,
        settle_seconds: float = 2.0,
        dead_letter: Callable[[list[Refusal]], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.ingest = ingest
        self.name = name
        self.fmt = fmt
        self.field_map = dict(field_map) if field_map else None
        self.source = source
        self.settle_seconds = settle_seconds
        self.dead_letter = dead_letter
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def processed_dir(self) -> Path:
        return self.path / PROCESSED

    @property
    def failed_dir(self) -> Path:
        return self.path / FAILED

    def pending(self) -> list[Path]:
        """Files ready to ingest, oldest first."""
        now = time.time()
        ready: list[tuple[float, str, Path]] = []
        for entry in self.path.iterdir():
            if entry.name.startswith(".") or entry.suffix.lower() not in SUFFIXES or not entry.is_file():
                continue
            mtime = entry.stat().st_mtime
            if now - mtime >= self.settle_seconds:
                ready.append((mtime, entry.name, entry))
        return [p for _, _, p in sorted(ready)]

    def poll_once(self) -> PollResult:
        result = PollResult()
        for file in self.pending():
            result.add(self.process(file))
        return result

    def process(self, file: Path) -> PollResult:
        """Ingest one file and move it (see the module docstring for where it goes)."""
        try:
            text = file.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            return PollResult(problems=[f"{file.name}: cannot read ({exc.strerror})"])  # retried next poll

        problems: list[str] = []
        refused: list[Refusal] = []
        items: list[dict[str, Any]] = []
        labels: list[str] = []
        parsed = list(parse_payload(text))
        for p in parsed:
            label = f"line {p.line}" if p.line is not None else f"item {p.index}"
            reason, field_name, data = p.error, None, None
            if reason is None and not isinstance(p.data, dict):
                reason = "an alert must be a JSON object"
            elif reason is None:
                try:
                    data = clean_json(p.data, keep_top=IDENTIFIERS)
                except UnsafeJSON as exc:
                    reason, field_name = exc.reason, exc.path or None
            if reason is not None or data is None:
                why = reason or "unreadable"
                problems.append(f"{label}: {field_name + ': ' if field_name else ''}{why}")
                payload = p.text if p.data is None else p.data
                refused.append(Refusal(p.index, p.line, why, payload, field=field_name))
            else:
                items.append(data)
                labels.append(label)
        result = PollResult(fetched=len(parsed), rejected=len(problems))
        try:
            outcome = submit(
                items, self.ingest, fmt=self.fmt, field_map=self.field_map, source=self.source, labels=labels
            )
        except Exception as exc:  # the store failed, not the file: keep it for the next poll
            log.exception("%s: ingest of %s failed; left in place", self.name, file.name)
            result.problems.append(f"{file.name}: ingest failed ({type(exc).__name__}); will retry")
            result.fetched = 0
            result.rejected = 0
            return result
        outcome.fetched = 0
        result.add(outcome)
        problems.extend(outcome.problems)
        if refused and self.dead_letter is not None:
            try:
                self.dead_letter(
                    [
                        Refusal(r.index, r.line, f"{file.name}: {r.reason}", r.payload, r.field)
                        for r in refused
                    ]
                )
            except Exception:  # the good items are stored; a lost dead letter must not re-ingest the file
                log.exception("%s: could not keep the refused items of %s", self.name, file.name)
        if result.rejected:
            return self._fail(file, problems, result)
        self._move(file, self.processed_dir)
        return result

    def _fail(self, file: Path, problems: list[str], result: PollResult) -> PollResult:
        target = self._move(file, self.failed_dir)
        reason = "\n".join(problems) + "\n"
        target.with_name(target.name + ".error").write_text(reason, encoding="utf-8")
        result.problems = [f"{file.name}: {p}" for p in problems]
        if not result.rejected:
            result.rejected = 1
        return result

    @staticmethod
    def _move(file: Path, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file.name
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = folder / f"{file.stem}.{stamp}{file.suffix}"
        os.replace(file, target)
        return target
