"""Warehouse schema (SQLAlchemy Core). Every table carries `tenant_id`; changes go through Alembic."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _tenant() -> Column:
    return Column("tenant_id", Text, nullable=False)


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


users = Table(
    "users",
    metadata,
    _tenant(),
    Column("user_id", BigInteger, nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text),
    Column("role", Text, nullable=False, server_default="analyst"),
    Column("hashed_password", Text),
    _created(),
    PrimaryKeyConstraint("tenant_id", "user_id"),
)

stores = Table(
    "stores",
    metadata,
    _tenant(),
    Column("store_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("region", Text),
    _created(),
    PrimaryKeyConstraint("tenant_id", "store_id"),
)

products = Table(
    "products",
    metadata,
    _tenant(),
    Column("product_id", BigInteger, nullable=False),
    Column("manufacturer_id", BigInteger),
    Column("department", Text),
    Column("brand", Text),
    Column("product_category", Text),
    Column("product_type", Text),
    Column("package_size", Text),
    _created(),
    PrimaryKeyConstraint("tenant_id", "product_id"),
)

customers = Table(
    "customers",
    metadata,
    _tenant(),
    Column("customer_id", BigInteger, nullable=False),
    Column("age", Text),
    Column("income", Text),
    Column("home_ownership", Text),
    Column("marital_status", Text),
    Column("household_size", Text),
    Column("household_comp", Text),
    Column("kids_count", Text),
    _created(),
    PrimaryKeyConstraint("tenant_id", "customer_id"),
)

transactions = Table(
    "transactions",
    metadata,
    _tenant(),
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
    _tenant(),
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
    _tenant(),
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
    _tenant(),
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


def _document(name: str) -> Table:
    """A document collection of the seed, kept as a JSONB payload table."""
    return Table(
        name,
        metadata,
        _tenant(),
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("kind", Text, nullable=False),
        Column("subject_id", Text),
        Column("payload", JSONB, nullable=False),
        _created(),
        Index(f"ix_{name}_tenant_kind", "tenant_id", "kind", "subject_id"),
    )


predictions = Table(
    "predictions",
    metadata,
    _tenant(),
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
alerts = _document("alerts")
audit_log = _document("audit_log")

ingest_runs = Table(
    "ingest_runs",
    metadata,
    _tenant(),
    Column("source", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "source", "scope"),
)

customer_rfm = Table(
    "customer_rfm",
    metadata,
    _tenant(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    Column("recency_days", Float, nullable=False),
    Column("frequency", Float, nullable=False),
    Column("monetary", Float, nullable=False),
    Column("avg_basket_value", Float, nullable=False),
    Column("avg_items_per_basket", Float, nullable=False),
    Column("distinct_products", Float, nullable=False),
    Column("discount_share", Float, nullable=False),
    Column("coupon_share", Float, nullable=False),
    Column("tenure_days", Float, nullable=False),
    Column("weekend_share", Float, nullable=False),
    Column("stores_visited", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

# ----------------------------------------------------------------------------- demand forecast
# Filled by pipelines/ingest.py (placements) and features/forecast.py (the rest);
# docs/forecast-features.md describes the rules.

promotion_placements = Table(
    "promotion_placements",
    metadata,
    _tenant(),
    Column("store_id", Text, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("week", SmallInteger, nullable=False),
    Column("display_location", Text, nullable=False),  # '0' = not on display
    Column("mailer_location", Text, nullable=False),  # '0' = not in the mailer
    PrimaryKeyConstraint("tenant_id", "store_id", "product_id", "week"),
)

calendar_weeks = Table(
    "calendar_weeks",
    metadata,
    _tenant(),
    Column("week", SmallInteger, nullable=False),
    Column("week_start", DateTime(timezone=True), nullable=False),  # inclusive
    Column("week_end", DateTime(timezone=True), nullable=False),  # exclusive
    Column("week_of_year", SmallInteger, nullable=False),  # ISO week of the week's last day
    Column("holiday_count", SmallInteger, nullable=False),
    Column("holiday_names", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("tenant_id", "week"),
)

# Integer-valued features are bigint: pandas reads them as int64, which Feast accepts for both
# Int64 and Float64 fields (int32 is rejected for Float64).
store_product_weekly = Table(
    "store_product_weekly",
    metadata,
    _tenant(),
    Column("store_id", Text, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("week", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),  # end of the week
    Column("units", BigInteger, nullable=False),
    Column("sales_value", Float, nullable=False),
    Column("shelf_price", Float, nullable=False),
    Column("discount_depth", Float, nullable=False),
    Column("display", BigInteger, nullable=False),
    Column("mailer", BigInteger, nullable=False),
    Column("week_of_year", BigInteger, nullable=False),
    Column("holiday", BigInteger, nullable=False),
    *[Column(f"units_lag_{k}", BigInteger, nullable=False) for k in range(1, 16)],
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "store_id", "product_id", "week"),
    # a recompute swaps in a fresh partition for its tenant (features/forecast.py)
    postgresql_partition_by="LIST (tenant_id)",
)

product_attributes = Table(
    "product_attributes",
    metadata,
    _tenant(),
    Column("product_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    Column("department", Text, nullable=False),
    Column("product_category", Text),
    Column("product_type", Text),
    Column("brand", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "product_id"),
)

store_attributes = Table(
    "store_attributes",
    metadata,
    _tenant(),
    Column("store_id", Text, nullable=False),
    Column("week", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),  # end of the week
    Column("weekly_baskets", Float, nullable=False),
    Column("mean_basket_value", Float, nullable=False),
    Column("products_sold", BigInteger, nullable=False),
    Column("first_week", BigInteger, nullable=False),
    Column("last_week", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "store_id", "week"),
)

store_daily_sales = Table(
    "store_daily_sales",
    metadata,
    _tenant(),
    Column("store_id", Text, nullable=False),
    Column("business_date", Date, nullable=False),  # transaction time (UTC) - 5 h
    Column("event_timestamp", DateTime(timezone=True), nullable=False),  # end of the day
    Column("sales", Float, nullable=False),
    Column("transactions", BigInteger, nullable=False),
    Column("median_unit_price", Float),  # NULL: no line with quantity > 0 that day
    PrimaryKeyConstraint("tenant_id", "store_id", "business_date"),
)

CHURN_FEATURES = (
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

# The churn view's features (features/catalog.py CUSTOMER_CHURN), one row per customer and
# snapshot time: the training cutoff and "now" (features/churn_store.py).
customer_churn_features = Table(
    "customer_churn_features",
    metadata,
    _tenant(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    *[Column(name, Float, nullable=False) for name in CHURN_FEATURES],
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

# Which households received which campaign (Complete Journey `campaigns`; migration 0006);
# read by the promotion-impact model (training/promotions.py).
campaign_households = Table(
    "campaign_households",
    metadata,
    _tenant(),
    Column("campaign_id", Integer, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id", "customer_id"),
    Index("ix_campaign_households_customer", "tenant_id", "customer_id"),
)
