"""Shared test fixtures: databases (SQLite file and PostgreSQL), shared data, service checks.

A test that needs a service (PostgreSQL, Redis, ...) skips locally when it is missing, and FAILS when
``CI=true``: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "SOCFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://socflow:test-only-pw@127.0.0.1:5432/socflow_test"
)
REDIS_URL = os.environ.get("SOCFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_missing(name: str, why: str) -> None:
    """Skip locally, fail in CI."""
    message = f"{name} is not available ({why})"
    if IN_CI:
        pytest.fail(message + "; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("SOCFLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not (path / "attack").is_dir():
        pytest.fail(f"shared data not found at {path}; set SOCFLOW_SHARED_DATA", pytrace=False)
    return path


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from socflow.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- SQLite ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from socflow import migrate

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    path = tmp_path / "socflow.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


# -- PostgreSQL --------------------------------------------------------------------------------------
def _pg_admin_url() -> str:
    return make_url(POSTGRES_URL).set(database="postgres").render_as_string(hide_password=False)


def _pg_execute(sql: str) -> None:
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _pg_available() -> bool:
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:  # any connection failure means the service is missing
        return False
    finally:
        engine.dispose()


def new_pg_database(template: str | None = None) -> str:
    name = f"socflow_t_{uuid.uuid4().hex[:12]}"
    _pg_execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_empty_url(_pg_available: bool) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    if not _pg_available:
        service_missing("PostgreSQL", POSTGRES_URL)
    url = new_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def _pg_template(_pg_available: bool) -> Iterator[str | None]:
    if not _pg_available:
        yield None
        return
    from socflow import migrate

    url = new_pg_database()
    migrate.upgrade(url)
    yield make_url(url).database
    drop_pg_database(url)


@pytest.fixture
def pg_url(_pg_template: str | None) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own (copied from a migrated template)."""
    if _pg_template is None:
        service_missing("PostgreSQL", POSTGRES_URL)
    assert _pg_template is not None
    url = new_pg_database(template=_pg_template)
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of this test's own: the same test runs on SQLite and PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on SQLite and PostgreSQL, for migration tests."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("pg_empty_url"))


@pytest.fixture
def factory(sqlite_url: str):  # type: ignore[no-untyped-def]
    """A session factory on a migrated SQLite file."""
    from socflow.db import make_engine, session_factory

    engine = make_engine(sqlite_url)
    yield session_factory(engine)
    engine.dispose()
