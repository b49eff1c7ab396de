from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from socflow.api import create_app
from socflow.auth import Role, hash_token, new_token
from socflow.db import make_engine, session_factory
from socflow.dispatch import NullDispatcher
from socflow.settings import Settings
from socflow.store import CaseStore


def make_token(db_url: str, role: Role, name: str | None = None) -> str:
    raw = new_token()
    engine = make_engine(db_url)
    with session_factory(engine)() as session, session.begin():
        CaseStore(session).create_token(
            name=name or f"{role.value}-user",
            role=role.value,
            token_hash=hash_token(raw),
            prefix=raw[:10],
            actor="test",
        )
    engine.dispose()
    return raw


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database={"url": db_url}, siem={"path": tmp_path / "siem.db"}, model={"backend": "scripted"}
    )


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    app = create_app(api_settings, dispatcher=NullDispatcher())
    with TestClient(app) as c:
        yield c


@pytest.fixture
def tokens(api_settings: Settings) -> dict[str, str]:
    return {r.value: make_token(api_settings.database.url, r) for r in Role}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
