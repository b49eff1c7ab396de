"""Migrations and tables agree, on SQLite and PostgreSQL; upgrade -> downgrade -> upgrade works."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from socflow import migrate
from socflow.db import make_engine
from socflow.migrate import alembic_config
from socflow.tables import CHECKPOINTER_TABLES, Base

OURS = {t.name for t in Base.metadata.sorted_tables}


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": migrate.include_object}
            )
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_no_table_uses_checkpointer_names() -> None:
    assert not OURS & CHECKPOINTER_TABLES


def test_upgrade_downgrade_upgrade_and_no_drift(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()
    engine = make_engine(empty_db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= OURS
        # LangGraph's checkpointer shares the database: its tables must not look like drift.
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE checkpoints (thread_id TEXT PRIMARY KEY)"))
    finally:
        engine.dispose()
    assert _diff(empty_db_url) == []

    migrate.downgrade(empty_db_url, "base")
    engine = make_engine(empty_db_url)
    try:
        left = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert not (left & OURS)
    assert "checkpoints" in left  # never touched by our migrations

    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()
    assert _diff(empty_db_url) == []


def test_alembic_env_excludes_checkpointer_tables(empty_db_url: str) -> None:
    """Autogenerate through the real env.py proposes nothing for checkpointer tables."""
    from alembic import command
    from alembic.script import ScriptDirectory

    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    with engine.begin() as conn:
        for name in sorted(CHECKPOINTER_TABLES):
            conn.execute(text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    cfg = alembic_config(empty_db_url)
    captured: list = []

    def process(context, revision, directives):  # type: ignore[no-untyped-def]
        captured.extend(directives)
        directives[:] = []  # write nothing

    command.revision(cfg, autogenerate=True, message="probe", process_revision_directives=process)
    assert captured and captured[0].upgrade_ops.is_empty(), captured[0].upgrade_ops.as_diffs()
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrate.head()
