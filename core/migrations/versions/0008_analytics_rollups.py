"""analytics rollups (issue 9 part 2)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.Text(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "sales_hourly",
        _tenant(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column("discounts", MONEY, nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "store_id", "hour", name=op.f("pk_sales_hourly")
        ),
    )
    op.create_table(
        "sales_daily",
        _tenant(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("discounts", MONEY, nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "store_id", name=op.f("pk_sales_daily")),
    )
    op.create_table(
        "product_weekly",
        _tenant(),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("discounts", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "product_id", "week", name=op.f("pk_product_weekly")),
    )
    op.create_table(
        "category_daily",
        _tenant(),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("product_category", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "department", "product_category", "day", name=op.f("pk_category_daily")
        ),
    )
    op.create_index(
        "ix_category_daily_category", "category_daily", ["tenant_id", "product_category", "day"]
    )
    op.create_table(
        "analytics_categories",
        _tenant(),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("product_category", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "category_id", name=op.f("pk_analytics_categories")),
        sa.UniqueConstraint(
            "tenant_id", "department", "product_category", name="uq_analytics_categories_name"
        ),
    )
    op.create_table(
        "basket_sets",
        _tenant(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_id", sa.Text(), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column("sizes", sa.LargeBinary(), nullable=False),
        sa.Column("items", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "store_id", name=op.f("pk_basket_sets")),
    )


def downgrade() -> None:
    for table in (
        "basket_sets",
        "analytics_categories",
        "category_daily",
        "product_weekly",
        "sales_daily",
        "sales_hourly",
    ):
        op.drop_table(table)
