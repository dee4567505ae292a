"""The warehouse: stores, products, customers, baskets and their lines, inventory, promotions,
campaign exposure, batch predictions and ingest bookkeeping."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from core.schema.base import created_column, metadata, tenant_column

stores = Table(
    "stores",
    metadata,
    tenant_column(),
    Column("store_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("region", Text),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "store_id"),
)

products = Table(
    "products",
    metadata,
    tenant_column(),
    Column("product_id", BigInteger, nullable=False),
    Column("manufacturer_id", BigInteger),
    Column("department", Text),
    Column("brand", Text),
    Column("product_category", Text),
    Column("product_type", Text),
    Column("package_size", Text),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "product_id"),
)

customers = Table(
    "customers",
    metadata,
    tenant_column(),
    Column("customer_id", BigInteger, nullable=False),
    Column("age", Text),
    Column("income", Text),
    Column("home_ownership", Text),
    Column("marital_status", Text),
    Column("household_size", Text),
    Column("household_comp", Text),
    Column("kids_count", Text),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "customer_id"),
)

transactions = Table(
    "transactions",
    metadata,
    tenant_column(),
    Column("transaction_id", BigInteger, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("transaction_timestamp", DateTime(timezone=True), nullable=False),
    Column("week", SmallInteger),
    Column("item_count", Integer, nullable=False),
    Column("total_sales", Numeric(12, 2), nullable=False),
    Column("total_discount", Numeric(12, 2), nullable=False),
    PrimaryKeyConstraint("tenant_id", "transaction_id"),
    Index("ix_transactions_customer_ts", "tenant_id", "customer_id", "transaction_timestamp"),
    postgresql_partition_by="LIST (tenant_id)",  # see core/partitions.py
)

transaction_items = Table(
    "transaction_items",
    metadata,
    tenant_column(),
    Column("transaction_id", BigInteger, nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("sales_value", Numeric(12, 2), nullable=False),
    Column("retail_disc", Numeric(12, 2), nullable=False),
    Column("coupon_disc", Numeric(12, 2), nullable=False),
    Column("coupon_match_disc", Numeric(12, 2), nullable=False),
    # shelf price per unit = (sales_value + retail_disc + coupon_match_disc) / quantity; NULL if qty 0
    Column("unit_price", Numeric(12, 4)),
    PrimaryKeyConstraint("tenant_id", "transaction_id", "line_no"),
    postgresql_partition_by="LIST (tenant_id)",  # see core/partitions.py
)

inventory = Table(
    "inventory",
    metadata,
    tenant_column(),
    Column("store_id", Text, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reorder_point", Integer),
    Column("source_rule", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "store_id", "product_id"),
)

promotions = Table(
    "promotions",
    metadata,
    tenant_column(),
    Column("promotion_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # "campaign" or "coupon"
    Column("campaign_id", Integer),
    Column("campaign_type", Text),
    Column("coupon_upc", Text),
    Column("product_id", BigInteger),
    Column("start_date", DateTime(timezone=True)),
    Column("end_date", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "promotion_id"),
)

predictions = Table(
    "predictions",
    metadata,
    tenant_column(),
    # Batch scores (pipelines/jobs/score.py): one row per tenant, model, registered version and
    # entity; re-scoring a version replaces its rows, other versions' rows stay beside them.
    Column("model", Text, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("entity", Text, nullable=False),  # customer id, "store:product", "store:date"
    Column("run_id", Text, nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    PrimaryKeyConstraint("tenant_id", "model", "model_version", "entity"),
    Index("ix_predictions_tenant_model_entity", "tenant_id", "model", "entity"),
)

ingest_runs = Table(
    "ingest_runs",
    metadata,
    tenant_column(),
    Column("source", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "source", "scope"),
)

# Which households received which campaign (Complete Journey `campaigns`; migration 0006);
# read by the promotion-impact model (training/promotions.py).
campaign_households = Table(
    "campaign_households",
    metadata,
    tenant_column(),
    Column("campaign_id", Integer, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id", "customer_id"),
    Index("ix_campaign_households_customer", "tenant_id", "customer_id"),
)
