"""users: local accounts and single sign-on accounts for the web UI; web sessions for a user

Revision ID: 0020
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0015"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("oidc_issuer", sa.String(length=500), nullable=True),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_identity"),
    )
    with op.batch_alter_table("web_sessions") as batch:
        batch.alter_column("token_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("user_id", BigId, nullable=True))
        batch.create_foreign_key(op.f("fk_web_sessions_user_id_users"), "users", ["user_id"], ["id"])
        batch.create_index(op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM web_sessions WHERE token_id IS NULL")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_index(op.f("ix_web_sessions_user_id"))
        batch.drop_constraint(op.f("fk_web_sessions_user_id_users"), type_="foreignkey")
        batch.drop_column("user_id")
        batch.alter_column("token_id", existing_type=BigId, nullable=False)
    op.drop_table("users")
