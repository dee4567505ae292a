"""alert rules, alerts and notifications (issue 9 part 3)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:30:00

`alert_rules` (soft-deleted), `alert_events` (one row per raised alert; a partial unique index
on (tenant_id, dedup_key) over the rows not yet resolved makes "not raised again while open" a
database guarantee) and `alert_deliveries` (every notification attempt). The unused JSONB
`alerts` document table of 0001 is dropped (nothing read or wrote it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONB = postgresql.JSONB(astext_type=sa.Text())
EMPTY = sa.text("'{}'::jsonb")
OPEN = sa.text("status <> 'resolved'")


def _ts(name: str, *, now: bool = False) -> sa.Column:
    if now:
        return sa.Column(
            name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        )
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.drop_index("ix_alerts_tenant_kind", table_name="alerts")
    op.drop_table("alerts")
    op.create_table(
        "alert_rules",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("scope", JSONB, server_default=EMPTY, nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("channels", JSONB, server_default=EMPTY, nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        _ts("created_at", now=True),
        _ts("deleted_at"),
        sa.PrimaryKeyConstraint("tenant_id", "rule_id", name="pk_alert_rules"),
        sa.CheckConstraint(
            "kind IN ('threshold', 'anomaly', 'stockout', 'performance_drop')",
            name="ck_alert_rules_kind",
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name="ck_alert_rules_severity"
        ),
    )
    op.create_table(
        "alert_events",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("subject", JSONB, nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        _ts("triggered_at", now=True),
        _ts("acknowledged_at"),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        _ts("resolved_at"),
        sa.Column("payload", JSONB, server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id", name="pk_alert_events"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "rule_id"],
            ["alert_rules.tenant_id", "alert_rules.rule_id"],
            name="fk_alert_events_rule",
        ),
        sa.CheckConstraint(
            "status IN ('active', 'acknowledged', 'resolved')", name="ck_alert_events_status"
        ),
    )
    op.create_index(
        "uq_alert_events_open_dedup",
        "alert_events",
        ["tenant_id", "dedup_key"],
        unique=True,
        postgresql_where=OPEN,
    )
    op.create_index(
        "ix_alert_events_tenant_triggered", "alert_events", ["tenant_id", "triggered_at"]
    )
    op.create_index(
        "ix_alert_events_open_rule", "alert_events", ["tenant_id", "rule_id"], postgresql_where=OPEN
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("at", now=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_alert_deliveries"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "alert_id"],
            ["alert_events.tenant_id", "alert_events.alert_id"],
            name="fk_alert_deliveries_alert",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_alert_deliveries_alert", "alert_deliveries", ["tenant_id", "alert_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_alert", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_events_open_rule", table_name="alert_events")
    op.drop_index("ix_alert_events_tenant_triggered", table_name="alert_events")
    op.drop_index("uq_alert_events_open_dedup", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.create_table(
        "alerts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column("payload", JSONB, nullable=False),
        _ts("created_at", now=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index(
        "ix_alerts_tenant_kind", "alerts", ["tenant_id", "kind", "subject_id"], unique=False
    )
