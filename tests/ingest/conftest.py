"""Fixtures for ingest-side tests: an ingest service on a migrated database, the callback connectors use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from socflow.db import make_engine, session_factory
from socflow.ingest import IngestService
from socflow.schemas import IngestReport
from socflow.tables import Alert


@dataclass
class Stored:
    factory: sessionmaker[Session]
    service: IngestService

    def ingest(self, actor: str) -> Any:
        """The callback the CLI wires: generic dicts -> NDJSON -> ``IngestService.ingest_text``."""

        def call(alerts: list[dict[str, Any]]) -> IngestReport:
            return self.service.ingest_text("\n".join(json.dumps(a) for a in alerts), actor=actor)

        return call

    def refs(self) -> list[tuple[str, str | None]]:
        with self.factory() as session:
            return [(a.source, a.source_ref) for a in session.scalars(select(Alert).order_by(Alert.id))]


@pytest.fixture
def stored(db_url: str) -> Iterator[Stored]:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    yield Stored(factory, IngestService(factory))
    engine.dispose()
