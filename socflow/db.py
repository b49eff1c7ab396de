"""Engines and sessions. SQLite gets WAL, a busy timeout and real transactions on every connection.

SQLite under concurrency: the sqlite3 driver's own transaction handling is turned off and SQLAlchemy's
``begin`` emits ``BEGIN`` itself (so SAVEPOINTs nest inside a real transaction and a failed unit commits
nothing). A session transaction opened explicitly (``session.begin()``: every writer in socflow) is
upgraded to ``BEGIN IMMEDIATE``: it takes the write lock up front and waits up to the busy timeout for it,
instead of failing at once with "database is locked" when a deferred read transaction tries to become a
writer after another writer committed (SQLITE_BUSY_SNAPSHOT, which the busy timeout does not cover).
Read-only sessions (autobegin) stay deferred, so readers never wait for writers in WAL mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.orm.session import SessionTransactionOrigin

SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()
    dbapi_conn.isolation_level = None  # the driver stops issuing BEGIN/COMMIT on its own


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # VACUUM and friends run outside any transaction
    conn.exec_driver_sql("BEGIN")


def _immediate_writes(session: Session, transaction: SessionTransaction, connection: Any) -> None:
    """``session.begin()`` on SQLite: restart the (still empty) transaction as ``BEGIN IMMEDIATE``."""
    if transaction.parent is not None or transaction.origin is not SessionTransactionOrigin.BEGIN:
        return
    if connection.dialect.name != "sqlite":
        return
    connection.exec_driver_sql("COMMIT")
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their folder created, WAL mode and a busy timeout."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        event.listen(factory, "after_begin", _immediate_writes)
    return factory


def database_url(factory: sessionmaker[Session]) -> str:
    """The URL (password included) of the engine a session factory is bound to."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory is not bound to an engine")
    return bind.url.render_as_string(hide_password=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session
