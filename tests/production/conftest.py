"""Fixtures of the production-path tests: a real OpenSearch-API server (session-scoped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.opensearch import OpenSearchServer


@pytest.fixture(scope="session")
def opensearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchServer]:
    """One osmem-server for the session; tests use indices of their own names."""
    server = OpenSearchServer(tmp_path_factory.mktemp("opensearch"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_opensearch(tmp_path: Path) -> Iterator[OpenSearchServer]:
    """An osmem-server of this test's own, which the test may stop and restart."""
    server = OpenSearchServer(tmp_path)
    server.start()
    yield server
    server.stop()
