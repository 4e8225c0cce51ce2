"""log openings (salts behind commitments); log_index on accounts, transfers and attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:00:00
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
        "log_openings",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_index("ix_log_openings_account", "log_openings", ["account_id", "idx"])
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("resolved_log_index", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("log_index")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("resolved_log_index")
        batch.drop_column("log_index")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("log_index")
    op.drop_index("ix_log_openings_account", table_name="log_openings")
    op.drop_table("log_openings")
