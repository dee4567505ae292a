"""store x business-day sales rollup (the anomaly detector's series)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_daily_sales",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sales", sa.Float(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("median_unit_price", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_id", "store_id", "business_date", name=op.f("pk_store_daily_sales")
        ),
    )


def downgrade() -> None:
    op.drop_table("store_daily_sales")
