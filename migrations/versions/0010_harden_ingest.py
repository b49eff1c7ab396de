"""harden: dead letters, server-side web sessions, injection flags, token sources and formats

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("door", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(op.f("ix_dead_letters_at"), "dead_letters", ["at"], unique=False)
    op.create_index(op.f("ix_dead_letters_door"), "dead_letters", ["door"], unique=False)
    op.create_index(op.f("ix_dead_letters_source"), "dead_letters", ["source"], unique=False)
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("token_id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_web_sessions_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_token_id"), "web_sessions", ["token_id"], unique=False)
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"], unique=False)
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("sender_bound", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("injection_flag", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("injection_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("injection_flag", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("injection_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("sources", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("ingest_format", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("ingest_format")
        batch.drop_column("sources")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("injection_reason")
        batch.drop_column("injection_flag")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("injection_reason")
        batch.drop_column("injection_flag")
        batch.drop_column("sender_bound")
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_token_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(op.f("ix_dead_letters_source"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_door"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_at"), table_name="dead_letters")
    op.drop_table("dead_letters")
