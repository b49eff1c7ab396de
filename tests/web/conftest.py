from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from socflow.auth import Role
from socflow.settings import Settings
from tests.api.conftest import make_token
from tests.web.helpers import make_web_app, web_settings


@dataclass
class Web:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.settings.database.url


@pytest.fixture
def web(sqlite_url: str, tmp_path: Path) -> Iterator[Web]:
    settings = web_settings(sqlite_url, tmp_path)
    tokens = {r.value: make_token(sqlite_url, r, name=f"{r.value}-alice") for r in Role}
    with TestClient(make_web_app(settings)) as client:
        yield Web(settings, client, tokens)
