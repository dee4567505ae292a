"""campaign_households: which households received which campaign (Complete Journey `campaigns`)

The promotion-impact model (training/promotions.py) compares households exposed to a campaign
with matched unexposed ones; exposure is this table, loaded by `retailpulse ingest
completejourney` (pipelines/ingest_campaigns.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_households",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "campaign_id", "customer_id", name=op.f("pk_campaign_households")
        ),
    )
    op.create_index(
        "ix_campaign_households_customer", "campaign_households", ["tenant_id", "customer_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_households_customer", table_name="campaign_households")
    op.drop_table("campaign_households")
