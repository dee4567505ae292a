"""the whole feature set: customer behaviour, product statistics, feature watermarks (issue 8 part 5)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEHAVIOUR_FEATURES = (
    "baskets",
    "basket_value_mean",
    "basket_value_sd",
    "basket_units_mean",
    "basket_units_sd",
    "items_per_basket",
    "promo_basket_share",
    "share_grocery",
    "share_drug_gm",
    "share_produce",
    "share_meat",
    "share_seafood",
    "share_deli",
    "share_bakery",
    "share_fuel",
    "share_other",
    "discounted_spend_share",
    "discount_depth",
    "coupon_redemption_rate",
    "coupon_savings_share",
)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _created() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "customer_behaviour",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        _ts("event_timestamp"),
        *[sa.Column(name, sa.Float(), nullable=False) for name in BEHAVIOUR_FEATURES],
        _created(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_id", "event_timestamp", name=op.f("pk_customer_behaviour")
        ),
    )
    op.create_table(
        "customer_demographics",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        _ts("event_timestamp"),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("has_demographics", sa.BigInteger(), nullable=False),
        sa.Column("age_band", sa.Text(), nullable=False),
        sa.Column("age_years", sa.Float(), nullable=True),
        sa.Column("income_band", sa.Text(), nullable=False),
        sa.Column("income_k", sa.Float(), nullable=True),
        sa.Column("household_size", sa.Float(), nullable=True),
        sa.Column("adults", sa.Float(), nullable=True),
        sa.Column("kids", sa.Float(), nullable=True),
        sa.Column("has_kids", sa.Float(), nullable=True),
        sa.Column("homeowner", sa.Float(), nullable=True),
        sa.Column("married", sa.Float(), nullable=True),
        sa.Column("household_comp", sa.Text(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_id", "event_timestamp", name=op.f("pk_customer_demographics")
        ),
    )
    op.create_table(
        "product_stats",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        _ts("event_timestamp"),
        *[
            sa.Column(f"{kind}_{w}d", sa.Float(), nullable=False)
            for kind in ("units", "revenue")
            for w in (7, 28, 91)
        ],
        sa.Column("shelf_price_91d", sa.Float(), nullable=True),
        sa.Column("display", sa.BigInteger(), nullable=False),
        sa.Column("mailer", sa.BigInteger(), nullable=False),
        sa.Column("display_stores", sa.BigInteger(), nullable=False),
        sa.Column("mailer_stores", sa.BigInteger(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "product_id", "event_timestamp", name=op.f("pk_product_stats")
        ),
    )
    op.create_table(
        "feature_watermarks",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("feature_table", sa.Text(), nullable=False),
        _ts("max_ts", nullable=True),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.BigInteger(), nullable=False),
        _ts("as_of", nullable=True),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", "feature_table", name=op.f("pk_feature_watermarks")),
    )
    # Feast's materialization reads a time window of a tenant's rows
    for table in ("customer_behaviour", "product_stats"):
        op.create_index(f"ix_{table}_tenant_ts", table, ["tenant_id", "event_timestamp"])
    op.create_index(
        "ix_promotion_placements_tenant_week", "promotion_placements", ["tenant_id", "week"]
    )


def downgrade() -> None:
    op.drop_index("ix_promotion_placements_tenant_week", table_name="promotion_placements")
    for table in ("customer_behaviour", "product_stats"):
        op.drop_index(f"ix_{table}_tenant_ts", table_name=table)
    for table in ("feature_watermarks", "product_stats", "customer_demographics"):
        op.drop_table(table)
    op.drop_table("customer_behaviour")
