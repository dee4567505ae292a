"""customer churn feature snapshots (features/churn.py; Feast view customer_churn_fv)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEATURES = (
    "recency_days",
    "recency_weeks",
    "tenure_days",
    "baskets_4w",
    "baskets_13w",
    "baskets_26w",
    "baskets_all",
    "spend_4w",
    "spend_13w",
    "spend_26w",
    "spend_all",
    "trend_4_13",
    "trend_13_26",
    "spend_trend_13_26",
    "active_share_4w",
    "active_share_13w",
    "active_share_tenure",
    "rate_per_week",
    "gap_mean_days",
    "gap_sd_days",
    "gap_max_days",
    "recency_over_gap",
    "recency_over_max_gap",
    "last_gap_over_mean",
    "silent9_share",
    "expected_silence",
    "discount_share",
    "coupon_basket_share",
    "distinct_products",
    "distinct_stores",
    "weekend_share",
    "avg_basket_value",
    "avg_items_per_basket",
)


def upgrade() -> None:
    op.create_table(
        "customer_churn_features",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=False) for name in FEATURES],
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_id", "event_timestamp", name=op.f("pk_customer_churn_features")
        ),
    )


def downgrade() -> None:
    op.drop_table("customer_churn_features")
