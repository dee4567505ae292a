"""integration API: sync batches, outbound webhooks and their deliveries (issue 8 part 4)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00

`sync_batches` (one row per POS / inventory / CRM sync with its counts and a sample of its
errors; `GET /api/v1/integrations/status` reads it), `webhooks` (soft-deleted, so their
deliveries keep their history) and `webhook_deliveries` (every attempt). CRM syncs bring a
customer's name, e-mail and loyalty tier: `customers` gains those columns and the time of the
CRM record they came from (`profile_updated_at`, so an older record never overwrites a newer).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONB = postgresql.JSONB(astext_type=sa.Text())
CUSTOMER_COLUMNS = ("name", "email", "loyalty_tier")


def _now(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    for name in CUSTOMER_COLUMNS:
        op.add_column("customers", sa.Column(name, sa.Text(), nullable=True))
    op.add_column(
        "customers", sa.Column("profile_updated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "sync_batches",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("sync_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("atomic", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("stale", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rules", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("errors", JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        _now("received_at"),
        _now("finished_at"),
        sa.PrimaryKeyConstraint("tenant_id", "sync_id", name="pk_sync_batches"),
        sa.CheckConstraint("source IN ('pos', 'inventory', 'crm')", name="ck_sync_batches_source"),
        sa.CheckConstraint(
            "status IN ('complete', 'partial', 'rejected')", name="ck_sync_batches_status"
        ),
    )
    op.create_index(
        "ix_sync_batches_tenant_source",
        "sync_batches",
        ["tenant_id", "source", "received_at"],
    )
    op.create_table(
        "webhooks",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        _now("created_at"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "webhook_id", name="pk_webhooks"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("attempt_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        _now("at"),
        sa.PrimaryKeyConstraint("attempt_id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "webhook_id"],
            ["webhooks.tenant_id", "webhooks.webhook_id"],
            name="fk_webhook_deliveries_webhook",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook",
        "webhook_deliveries",
        ["tenant_id", "webhook_id", "at"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_webhook", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("ix_sync_batches_tenant_source", table_name="sync_batches")
    op.drop_table("sync_batches")
    op.drop_column("customers", "profile_updated_at")
    for name in reversed(CUSTOMER_COLUMNS):
        op.drop_column("customers", name)
