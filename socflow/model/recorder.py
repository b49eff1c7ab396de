"""Audit of model calls: every call writes exactly one ``model_calls`` row, success or failure.

Backends fill a ``CallRecord`` inside ``audited(recorder, record)``; on leaving the block the latency is
taken, an exception (if any) is written as ``error``/``error_kind`` and re-raised, and the row is written.
With ``recorder=None`` nothing is written (unit tests of pure logic, the CLI's ``model try``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from socflow.db import transaction
from socflow.model.base import CallContext
from socflow.tables import ModelCall

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass
class CallRecord:
    """One model call as it will be written to ``model_calls``."""

    method: str
    backend: str
    model_id: str
    model_revision: str | None = None
    ctx: CallContext = field(default_factory=CallContext)
    parameters: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    raw_output: str | None = None
    parsed_output: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


class ModelCallRecorder:
    """Writes ``CallRecord``s into ``model_calls`` through a session factory (one transaction per row)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def record(self, rec: CallRecord) -> int:
        row = ModelCall(
            created_at=datetime.now(UTC),
            run_id=rec.ctx.run_id,
            case_id=rec.ctx.case_id,
            node=rec.ctx.node,
            method=rec.method,
            backend=rec.backend,
            model_id=rec.model_id[:500],
            model_revision=rec.model_revision[:200] if rec.model_revision else None,
            parameters=rec.parameters,
            prompt=rec.prompt,
            raw_output=rec.raw_output,
            parsed_output=rec.parsed_output,
            error=rec.error,
            error_kind=rec.error_kind,
            prompt_tokens=rec.prompt_tokens,
            completion_tokens=rec.completion_tokens,
            latency_ms=rec.latency_ms,
        )
        with transaction(self._session_factory) as session:
            session.add(row)
            session.flush()
            return int(row.id)


@contextmanager
def audited(recorder: ModelCallRecorder | None, rec: CallRecord) -> Iterator[CallRecord]:
    """Time the block, note any exception on ``rec``, write exactly one row, re-raise."""
    start = time.perf_counter()
    failed: BaseException | None = None
    try:
        yield rec
    except BaseException as exc:
        failed = exc
        rec.error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        rec.error_kind = str(getattr(exc, "code", None) or type(exc).__name__)
        raise
    finally:
        rec.latency_ms = (time.perf_counter() - start) * 1000.0
        if recorder is not None:
            try:
                recorder.record(rec)
            except Exception:
                if failed is None:
                    raise
                log.exception("could not write the model_calls row for a failed %s call", rec.method)
