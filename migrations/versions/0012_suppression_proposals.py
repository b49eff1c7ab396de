"""suppression_proposals: tuning proposals from cases closed as false positive (detect)

Revision ID: 0012
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppression_proposals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_name", sa.String(500), nullable=True),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_suppression_proposals_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_suppression_proposals"),
        sa.UniqueConstraint("case_id", "rule_id", name="uq_suppression_proposals_case_rule"),
    )
    op.create_index("ix_suppression_proposals_case_id", "suppression_proposals", ["case_id"])
    op.create_index("ix_suppression_proposals_rule_id", "suppression_proposals", ["rule_id"])
    op.create_index("ix_suppression_proposals_status", "suppression_proposals", ["status"])


def downgrade() -> None:
    op.drop_table("suppression_proposals")
