"""Warehouse schema (SQLAlchemy Core). Every table carries `tenant_id`; changes go through Alembic.

One `metadata` (core/schema/base.py) holds every table; the tables live by area:
`warehouse` (sales data), `features` (feature tables), `analytics` (rollups) and `platform`
(accounts, audit, alerts, reports, integrations). Importing this package registers them all.
"""

from __future__ import annotations

from core.schema import analytics, features, platform, warehouse
from core.schema.base import metadata

__all__ = ["analytics", "features", "metadata", "platform", "warehouse"]
