"""Analytics rollups (analytics/rollups.py) and the category ids of basket sets."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

from core.schema.base import metadata, tenant_column

# ----------------------------------------------------------------------------- analytics rollups
# Kept current by analytics/rollups.py inside every sales writer's transaction (migration 0008).
# `day` is the business date (transaction time UTC - 5 h, as store_daily_sales); `week` its
# Monday. Grains that aggregate the data (DESIGN §6): store × day × hour, store × day,
# product × week, category × day, and per store × day the baskets' category sets.

_MONEY = Numeric(14, 2)

sales_hourly = Table(
    "sales_hourly",
    metadata,
    tenant_column(),
    Column("day", Date, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("hour", SmallInteger, nullable=False),  # business-local hour 0-23
    Column("revenue", _MONEY, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("baskets", Integer, nullable=False),
    Column("discounts", _MONEY, nullable=False),
    PrimaryKeyConstraint("tenant_id", "day", "store_id", "hour"),
)

sales_daily = Table(
    "sales_daily",
    metadata,
    tenant_column(),
    Column("day", Date, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("revenue", _MONEY, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("baskets", Integer, nullable=False),
    Column("customers", Integer, nullable=False),  # distinct customers that store-day
    Column("discounts", _MONEY, nullable=False),
    Column("lines", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "day", "store_id"),
)

product_weekly = Table(
    "product_weekly",
    metadata,
    tenant_column(),
    Column("product_id", BigInteger, nullable=False),
    Column("week", Date, nullable=False),  # Monday of the business week
    Column("revenue", _MONEY, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("discounts", _MONEY, nullable=False),
    PrimaryKeyConstraint("tenant_id", "product_id", "week"),
)

category_daily = Table(
    "category_daily",
    metadata,
    tenant_column(),
    Column("department", Text, nullable=False),  # '(unknown)' for products without one
    Column("product_category", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("revenue", _MONEY, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("lines", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "department", "product_category", "day"),
    Index("ix_category_daily_category", "tenant_id", "product_category", "day"),
)

# Dense, append-only ids of (department, category) for basket_sets.items.
analytics_categories = Table(
    "analytics_categories",
    metadata,
    tenant_column(),
    Column("category_id", Integer, nullable=False),
    Column("department", Text, nullable=False),
    Column("product_category", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "category_id"),
    UniqueConstraint(
        "tenant_id", "department", "product_category", name="uq_analytics_categories_name"
    ),
)

# Per store-day, every basket's distinct category ids: `sizes` int16 per basket, `items` the
# int16 ids concatenated (big-endian), read with numpy for association rules.
basket_sets = Table(
    "basket_sets",
    metadata,
    tenant_column(),
    Column("day", Date, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("baskets", Integer, nullable=False),
    Column("sizes", LargeBinary, nullable=False),
    Column("items", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "day", "store_id"),
)
