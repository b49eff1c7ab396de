"""Alembic, driven from code: the only way the schema is created or changed."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from socflow.db import make_engine, normalize_url
from socflow.tables import CHECKPOINTER_TABLES


def _migrations_dir() -> Path:
    """``migrations/`` beside the package (a checkout or an editable install), else in the working
    folder (an installed wheel run from a deployment folder, as in the Dockerfile), else
    ``SOCFLOW_MIGRATIONS_DIR``."""
    if env := os.environ.get("SOCFLOW_MIGRATIONS_DIR"):
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "migrations"
    return beside if (beside / "env.py").is_file() else Path.cwd() / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate filter: LangGraph's checkpointer tables share the database but are not ours."""
    if type_ == "table" and name in CHECKPOINTER_TABLES:
        return False
    table = getattr(obj, "table", None)
    return not (table is not None and getattr(table, "name", None) in CHECKPOINTER_TABLES)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
