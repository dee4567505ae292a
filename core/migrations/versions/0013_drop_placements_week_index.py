"""drop ix_promotion_placements_tenant_week: it made every bulk load of the 3M placements
rows ~10 s slower (index maintenance) to save product statistics a sequential scan of one
tenant's placements per snapshot week

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 16:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_promotion_placements_tenant_week", table_name="promotion_placements")


def downgrade() -> None:
    op.create_index(
        "ix_promotion_placements_tenant_week", "promotion_placements", ["tenant_id", "week"]
    )
