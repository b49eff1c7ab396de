"""case_techniques: validated ATT&CK techniques per case

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_techniques",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("technique_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("tactics", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("evidence_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_techniques_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_techniques")),
        sa.UniqueConstraint("case_id", "technique_id", "source", name="uq_case_techniques_case_tech_source"),
    )
    with op.batch_alter_table("case_techniques", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_techniques_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_techniques", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_techniques_case_id"))

    op.drop_table("case_techniques")
