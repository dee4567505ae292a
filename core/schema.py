"""Warehouse schema (SQLAlchemy Core). Every table carries `tenant_id`; changes go through Alembic."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

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
    # accounts/ (migration 0007): one account per e-mail address within a tenant
    Column("user_id", Text, nullable=False),
    Column("email", Text, nullable=False),  # lower-cased
    Column("name", Text),
    Column("role", Text, nullable=False),  # accounts/permissions.py ROLES
    Column("store_ids", ARRAY(Text)),  # NULL: every store of the tenant
    Column("hashed_password", Text, nullable=False),  # argon2id
    Column("mfa_secret", Text),  # TOTP secret, encrypted (accounts/secrets.py); never returned
    Column("mfa_enabled", Boolean, nullable=False, server_default=false()),
    Column(
        "recovery_code_hashes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    ),
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", DateTime(timezone=True)),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("last_login_at", DateTime(timezone=True)),
    Column("password_changed_at", DateTime(timezone=True)),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "user_id"),
    UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
    CheckConstraint(
        "role IN ('super_admin', 'tenant_admin', 'store_manager', 'analyst', 'sales_associate')",
        name="ck_users_role",
    ),
)

# Rotating refresh tokens (hashed); a family is one login session (its id = the session id).
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", Text, nullable=False),
    _tenant(),
    Column("user_id", Text, nullable=False),
    Column("family_id", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoke_reason", Text),
    PrimaryKeyConstraint("token_hash"),
    ForeignKeyConstraint(
        ["tenant_id", "user_id"],
        ["users.tenant_id", "users.user_id"],
        name="fk_refresh_tokens_user",
        ondelete="CASCADE",
    ),
    Index("ix_refresh_tokens_family", "family_id"),
    Index("ix_refresh_tokens_user", "tenant_id", "user_id"),
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
# Authentication events and API writes (accounts/audit.py): kind = the action, subject_id = its
# target, payload = details; who (actor), from where (ip, user agent), outcome, when.
audit_log = Table(
    "audit_log",
    metadata,
    _tenant(),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject_id", Text),
    Column("payload", JSONB, nullable=False),
    _created(),
    Column("actor_id", Text),
    Column("actor_role", Text),
    Column("outcome", Text),
    Column("ip", Text),
    Column("user_agent", Text),
    Column("request_id", Text),
    Index("ix_audit_log_tenant_kind", "tenant_id", "kind", "subject_id"),
    Index("ix_audit_log_tenant_created", "tenant_id", "created_at"),
    Index("ix_audit_log_tenant_actor", "tenant_id", "actor_id"),
)

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

# ----------------------------------------------------------------------------- alerts
# Rules, the alerts they raise and every notification attempt (alerts/; migration 0010).
# "Deduplicated while an alert stays open" is the partial unique index on
# (tenant_id, dedup_key) over the rows not yet resolved.

alert_rules = Table(
    "alert_rules",
    metadata,
    _tenant(),
    Column("rule_id", BigInteger, nullable=False, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),  # threshold, anomaly, stockout, performance_drop
    Column("params", JSONB, nullable=False),
    Column("scope", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("severity", Text, nullable=False),  # info, warning, critical
    Column("channels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("secret", Text, nullable=False),  # HMAC key of the rule's webhook signatures
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", Text),
    _created(),
    Column("deleted_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "rule_id"),
    CheckConstraint(
        "kind IN ('threshold', 'anomaly', 'stockout', 'performance_drop')",
        name="ck_alert_rules_kind",
    ),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="ck_alert_rules_severity"),
)

alert_events = Table(
    "alert_events",
    metadata,
    _tenant(),
    Column("alert_id", BigInteger, nullable=False, autoincrement=True),
    Column("rule_id", BigInteger, nullable=False),
    Column("dedup_key", Text, nullable=False),  # rule + subject
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("subject", JSONB, nullable=False),  # e.g. {"store_id": "367"}
    Column("status", Text, nullable=False, server_default="active"),
    Column("triggered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", Text),
    Column("resolved_at", DateTime(timezone=True)),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    PrimaryKeyConstraint("tenant_id", "alert_id"),
    ForeignKeyConstraint(
        ["tenant_id", "rule_id"],
        ["alert_rules.tenant_id", "alert_rules.rule_id"],
        name="fk_alert_events_rule",
    ),
    CheckConstraint(
        "status IN ('active', 'acknowledged', 'resolved')", name="ck_alert_events_status"
    ),
    Index(
        "uq_alert_events_open_dedup",
        "tenant_id",
        "dedup_key",
        unique=True,
        postgresql_where=text("status <> 'resolved'"),
    ),
    Index("ix_alert_events_tenant_triggered", "tenant_id", "triggered_at"),
    Index(
        "ix_alert_events_open_rule",
        "tenant_id",
        "rule_id",
        postgresql_where=text("status <> 'resolved'"),
    ),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    _tenant(),
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("channel", Text, nullable=False),  # webhook, email, kafka
    Column("target", Text, nullable=False),  # URL, address or topic
    Column("attempt", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),  # sent, failed, skipped
    Column("response_code", Integer),
    Column("error", Text),  # the response excerpt or the exception, when not sent
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "alert_id"],
        ["alert_events.tenant_id", "alert_events.alert_id"],
        name="fk_alert_deliveries_alert",
        ondelete="CASCADE",
    ),
    Index("ix_alert_deliveries_alert", "tenant_id", "alert_id"),
)

# ---------------------------------------------------------------------------------- reports
# Requested reports, their rendered files and their schedules (migration 0009; reports/).

reports = Table(
    "reports",
    metadata,
    _tenant(),
    Column("report_id", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("format", Text, nullable=False),  # pdf, xlsx, csv, zip, json
    Column("status", Text, nullable=False, server_default="queued"),
    Column("error", Text),  # why a failed report failed
    Column("requested_by", Text),  # user id; NULL when auth is off or a schedule asked
    _created(),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("size_bytes", BigInteger),
    Column("schedule_id", Text),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_reports_status"),
    PrimaryKeyConstraint("tenant_id", "report_id"),
    Index("ix_reports_tenant_created", "tenant_id", "created_at"),
    Index("ix_reports_queued", "created_at", postgresql_where=text("status = 'queued'")),
)

# The file bytes live in PostgreSQL so any API replica can serve a download; written in the
# transaction that marks the report done.
report_files = Table(
    "report_files",
    metadata,
    _tenant(),
    Column("report_id", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    _created(),
    PrimaryKeyConstraint("tenant_id", "report_id"),
    ForeignKeyConstraint(
        ["tenant_id", "report_id"],
        ["reports.tenant_id", "reports.report_id"],
        name="fk_report_files_reports",
        ondelete="CASCADE",
    ),
)

report_schedules = Table(
    "report_schedules",
    metadata,
    _tenant(),
    Column("schedule_id", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("format", Text, nullable=False),
    Column("cron", Text, nullable=False),  # five fields, validated with croniter
    Column("timezone", Text, nullable=False, server_default="UTC"),  # the cron's wall clock
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", Text),
    _created(),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_report_id", Text),
    PrimaryKeyConstraint("tenant_id", "schedule_id"),
    Index("ix_report_schedules_due", "next_run_at", postgresql_where=text("enabled")),
)

# ----------------------------------------------------------------------------- analytics rollups
# Kept current by analytics/rollups.py inside every sales writer's transaction (migration 0008).
# `day` is the business date (transaction time UTC - 5 h, as store_daily_sales); `week` its
# Monday. Grains that aggregate the data (DESIGN §6): store × day × hour, store × day,
# product × week, category × day, and per store × day the baskets' category sets.
from sqlalchemy import LargeBinary, UniqueConstraint  # noqa: E402 (kept with its tables)

_MONEY = Numeric(14, 2)

sales_hourly = Table(
    "sales_hourly",
    metadata,
    _tenant(),
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
    _tenant(),
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
    _tenant(),
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
    _tenant(),
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
    _tenant(),
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
    _tenant(),
    Column("day", Date, nullable=False),
    Column("store_id", Text, nullable=False),
    Column("baskets", Integer, nullable=False),
    Column("sizes", LargeBinary, nullable=False),
    Column("items", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "day", "store_id"),
)

# ----------------------------------------------------------------------------- integrations
# The integration API (integrations/; migration 0011): every sync batch and its report, the
# tenant's outbound webhooks, and every delivery attempt. CRM syncs add contact and loyalty
# columns to `customers` (declared here so this block stays self-contained).

for _column in (
    Column("name", Text),
    Column("email", Text),
    Column("loyalty_tier", Text),
    Column("profile_updated_at", DateTime(timezone=True)),  # newest CRM record wins
):
    customers.append_column(_column)

sync_batches = Table(
    "sync_batches",
    metadata,
    _tenant(),
    Column("sync_id", BigInteger, nullable=False, autoincrement=True),
    Column("source", Text, nullable=False),  # pos, inventory, crm
    Column("batch_id", Text, nullable=False),  # the caller's, or generated
    Column("status", Text, nullable=False),  # complete, partial, rejected
    Column("atomic", Boolean, nullable=False, server_default=false()),
    Column("received", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("stale", Integer, nullable=False, server_default=text("0")),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # rule → records
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),  # a sample
    Column("created_by", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "sync_id"),
    CheckConstraint("source IN ('pos', 'inventory', 'crm')", name="ck_sync_batches_source"),
    CheckConstraint("status IN ('complete', 'partial', 'rejected')", name="ck_sync_batches_status"),
    Index("ix_sync_batches_tenant_source", "tenant_id", "source", "received_at"),
)

webhooks = Table(
    "webhooks",
    metadata,
    _tenant(),
    Column("webhook_id", BigInteger, nullable=False, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),  # integrations/webhooks.py EVENTS
    Column("secret", Text, nullable=False),  # HMAC-SHA256 key; returned once, at creation
    Column("description", Text),
    Column("created_by", Text),
    _created(),
    Column("deleted_at", DateTime(timezone=True)),  # kept for its deliveries' history
    PrimaryKeyConstraint("tenant_id", "webhook_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _tenant(),
    Column("attempt_id", BigInteger, primary_key=True, autoincrement=True),
    Column("webhook_id", BigInteger, nullable=False),
    Column("delivery_id", Text, nullable=False),  # one event to one webhook; sent as a header
    Column("event", Text, nullable=False),
    Column("attempt", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),  # sent, failed
    Column("response_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "webhook_id"],
        ["webhooks.tenant_id", "webhooks.webhook_id"],
        name="fk_webhook_deliveries_webhook",
        ondelete="CASCADE",
    ),
    Index("ix_webhook_deliveries_webhook", "tenant_id", "webhook_id", "at"),
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
    _tenant(),
    Column("customer_id", BigInteger, nullable=False),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    *[Column(name, Float, nullable=False) for name in BEHAVIOUR_FEATURES],
    _created(),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

customer_demographics = Table(
    "customer_demographics",
    metadata,
    _tenant(),
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
    _created(),
    PrimaryKeyConstraint("tenant_id", "customer_id", "event_timestamp"),
)

product_stats = Table(
    "product_stats",
    metadata,
    _tenant(),
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
    _created(),
    PrimaryKeyConstraint("tenant_id", "product_id", "event_timestamp"),
)

feature_watermarks = Table(
    "feature_watermarks",
    metadata,
    _tenant(),
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
