"""Feature tables (features/): RFM, the forecaster's weekly history and attributes, store daily
sales, churn, customer behaviour and demographics, product statistics and the watermarks of
incremental computation."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from core.schema.base import created_column, metadata, tenant_column

customer_rfm = Table(
    "customer_rfm",
    metadata,
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
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
    tenant_column(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    *[Column(name, Float, nullable=False) for name in CHURN_FEATURES],
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

# ----------------------------------------------------------------------------- feature set
# Customer behaviour, demographics and product statistics snapshots (features/customer_*.py,
# features/product_stats.py) and what each feature table was last computed from
# (features/watermarks.py); migration 0012.

BEHAVIOUR_FEATURES = (
    "baskets",
    "basket_value_mean",
    "basket_value_sd",
    "basket_units_mean",
    "basket_units_sd",
    "items_per_basket",
    "promo_basket_share",
    "share_grocery",
    "share_drug_gm",
    "share_produce",
    "share_meat",
    "share_seafood",
    "share_deli",
    "share_bakery",
    "share_fuel",
    "share_other",
    "discounted_spend_share",
    "discount_depth",
    "coupon_redemption_rate",
    "coupon_savings_share",
)

customer_behaviour = Table(
    "customer_behaviour",
    metadata,
    tenant_column(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    *[Column(name, Float, nullable=False) for name in BEHAVIOUR_FEATURES],
    created_column(),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

customer_demographics = Table(
    "customer_demographics",
    metadata,
    tenant_column(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),  # first basket or change
    Column("signature", Text, nullable=False),  # the source bands joined: tells a change apart
    Column("has_demographics", BigInteger, nullable=False),
    Column("age_band", Text, nullable=False),
    Column("age_years", Float),
    Column("income_band", Text, nullable=False),
    Column("income_k", Float),
    Column("household_size", Float),
    Column("adults", Float),
    Column("kids", Float),
    Column("has_kids", Float),
    Column("homeowner", Float),
    Column("married", Float),
    Column("household_comp", Text, nullable=False),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

product_stats = Table(
    "product_stats",
    metadata,
    tenant_column(),
    Column("product_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    *[
        Column(f"{kind}_{w}d", Float, nullable=False)
        for kind in ("units", "revenue")
        for w in (7, 28, 91)
    ],
    Column("shelf_price_91d", Float),  # NULL: no units in 91 days
    Column("display", BigInteger, nullable=False),
    Column("mailer", BigInteger, nullable=False),
    Column("display_stores", BigInteger, nullable=False),
    Column("mailer_stores", BigInteger, nullable=False),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "product_id", "event_timestamp"),
)

feature_watermarks = Table(
    "feature_watermarks",
    metadata,
    tenant_column(),
    Column("feature_table", Text, nullable=False),
    Column("max_ts", DateTime(timezone=True)),  # newest basket the table was computed from
    Column("transactions", BigInteger, nullable=False),  # baskets then
    Column("items", BigInteger, nullable=False),  # line items then
    Column("as_of", DateTime(timezone=True)),  # newest snapshot time written
    Column("mode", Text, nullable=False),  # full, incremental, skipped
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("computed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "feature_table"),
)

# Feast's materialization reads a time window of a tenant's rows
Index("ix_customer_behaviour_tenant_ts", customer_behaviour.c.tenant_id,
      customer_behaviour.c.event_timestamp)  # fmt: skip
Index("ix_product_stats_tenant_ts", product_stats.c.tenant_id, product_stats.c.event_timestamp)
