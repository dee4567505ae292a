"""forecast features: promotion placements, calendar weeks, store x product weekly, attributes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "promotion_placements",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.SmallInteger(), nullable=False),
        sa.Column("display_location", sa.Text(), nullable=False),
        sa.Column("mailer_location", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "store_id", "product_id", "week", name=op.f("pk_promotion_placements")
        ),
    )
    op.create_table(
        "calendar_weeks",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("week", sa.SmallInteger(), nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("week_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("week_of_year", sa.SmallInteger(), nullable=False),
        sa.Column("holiday_count", sa.SmallInteger(), nullable=False),
        sa.Column("holiday_names", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "week", name=op.f("pk_calendar_weeks")),
    )
    op.create_table(
        "store_product_weekly",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.BigInteger(), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("sales_value", sa.Float(), nullable=False),
        sa.Column("shelf_price", sa.Float(), nullable=False),
        sa.Column("discount_depth", sa.Float(), nullable=False),
        sa.Column("display", sa.BigInteger(), nullable=False),
        sa.Column("mailer", sa.BigInteger(), nullable=False),
        sa.Column("week_of_year", sa.BigInteger(), nullable=False),
        sa.Column("holiday", sa.BigInteger(), nullable=False),
        *[sa.Column(f"units_lag_{k}", sa.BigInteger(), nullable=False) for k in range(1, 16)],
        _created(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "store_id", "product_id", "week", name=op.f("pk_store_product_weekly")
        ),
        postgresql_partition_by="LIST (tenant_id)",
    )
    # A recompute fills a fresh table and attaches it as the tenant's partition
    # (features/forecast.py); rows written without one land in the default partition.
    op.execute(
        "CREATE TABLE store_product_weekly_default PARTITION OF store_product_weekly DEFAULT"
    )
    op.create_table(
        "product_attributes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("product_category", sa.Text(), nullable=True),
        sa.Column("product_type", sa.Text(), nullable=True),
        sa.Column("brand", sa.Text(), nullable=True),
        _created(),
        sa.PrimaryKeyConstraint("tenant_id", "product_id", name=op.f("pk_product_attributes")),
    )
    op.create_table(
        "store_attributes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("week", sa.BigInteger(), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("weekly_baskets", sa.Float(), nullable=False),
        sa.Column("mean_basket_value", sa.Float(), nullable=False),
        sa.Column("products_sold", sa.BigInteger(), nullable=False),
        sa.Column("first_week", sa.BigInteger(), nullable=False),
        sa.Column("last_week", sa.BigInteger(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("tenant_id", "store_id", "week", name=op.f("pk_store_attributes")),
    )


def downgrade() -> None:
    op.drop_table("store_attributes")
    op.drop_table("product_attributes")
    op.drop_table("store_product_weekly")
    op.drop_table("calendar_weeks")
    op.drop_table("promotion_placements")
