"""predictions: batch scores keyed by tenant, model, registered version and entity

The first schema kept `predictions` as a JSONB document table (kind, subject_id, payload) that
nothing wrote. Batch scoring (pipelines/jobs/score.py) needs a natural key so that re-scoring a
version replaces its rows: (tenant_id, model, model_version, entity), plus the MLflow run id
and the time of scoring. The table was never written, so it is recreated, not converted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_predictions_tenant_kind", table_name="predictions")
    op.drop_table("predictions")
    op.create_table(
        "predictions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "model", "model_version", "entity", name=op.f("pk_predictions")
        ),
    )
    op.create_index(
        "ix_predictions_tenant_model_entity",
        "predictions",
        ["tenant_id", "model", "entity"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_tenant_model_entity", table_name="predictions")
    op.drop_table("predictions")
    op.create_table(
        "predictions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(
        "ix_predictions_tenant_kind",
        "predictions",
        ["tenant_id", "kind", "subject_id"],
        unique=False,
    )
