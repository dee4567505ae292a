"""The shared `metadata` and column helpers of every table module in `core.schema`."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    Text,
    func,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def tenant_column() -> Column:
    """The `tenant_id` column every table carries."""
    return Column("tenant_id", Text, nullable=False)


def created_column() -> Column:
    """When the row was written (set by PostgreSQL)."""
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())
