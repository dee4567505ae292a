"""The feature catalog: one spec per entity, feature view and feature service.

Everything that names a feature — the Feast definitions in `feature_repo/`, the offline training
sets, the online reader, the models — takes the names from here, so adding a view touches this
file and the SQL that fills its table, nothing else. Specs are plain data (no Feast imports):
serving and training read them without loading Feast.

Naming (DESIGN §3): `<entity>_<topic>_source`, `<entity>_<topic>_fv`, services `<model>_v1`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from core.tenants import validate_tenant
from features.churn import FEATURE_DOCS as CHURN_FEATURE_DOCS
from features.customer_behaviour import BEHAVIOUR_FEATURES
from features.customer_demographics import DEMOGRAPHIC_FEATURES
from features.product_stats import PRODUCT_STATS_FEATURES

DType = Literal["float64", "int64", "string"]
TIMESTAMP_FIELD = "event_timestamp"
_SQL_TYPES = {"float64": "float8", "int64": "bigint", "string": "text"}
CREATED_FIELD = "created_at"


@dataclass(frozen=True)
class EntitySpec:
    """A Feast entity: one join key and its value type. A view over several entities (store
    × product) has a composite key."""

    name: str
    join_key: str
    key_type: Literal["int64", "string"]
    description: str


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: DType
    description: str


@dataclass(frozen=True)
class FeatureViewSpec:
    """One feature view: its entities (one or more), warehouse table, typed features, TTL."""

    entities: tuple[EntitySpec, ...]
    topic: str
    table: str
    features: tuple[FeatureSpec, ...]
    ttl: timedelta
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    # Rows unique per key and event time need no created-time tie-break; without one Feast's
    # point-in-time SQL skips a self-join that PostgreSQL plans as nested loops on big views.
    created_field: str | None = CREATED_FIELD

    @property
    def entity_name(self) -> str:
        return "_".join(e.name for e in self.entities)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(e.join_key for e in self.entities)

    @property
    def key_types(self) -> tuple[str, ...]:
        return tuple(e.key_type for e in self.entities)

    @property
    def name(self) -> str:
        return f"{self.entity_name}_{self.topic}_fv"

    @property
    def source_name(self) -> str:
        return f"{self.entity_name}_{self.topic}_source"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def refs(self) -> list[str]:
        """`<view>:<feature>` references, the form Feast's read APIs take."""
        return [f"{self.name}:{f.name}" for f in self.features]

    def source_query(self, tenant: str) -> str:
        """The tenant's rows of the view's table (the tenant literal is validated: no quotes)."""
        validate_tenant(tenant)
        # Cast to the declared types: counts are bigint in the warehouse, float64 in the model.
        casts = [f"{f.name}::{_SQL_TYPES[f.dtype]} AS {f.name}" for f in self.features]
        created = [self.created_field] if self.created_field else []
        columns = ", ".join([*self.join_keys, TIMESTAMP_FIELD, *created, *casts])
        return f"SELECT {columns} FROM {self.table} WHERE tenant_id = '{tenant}'"


@dataclass(frozen=True)
class FeatureServiceSpec:
    """The features one model version reads: `<model>_v<n>`."""

    name: str
    views: tuple[FeatureViewSpec, ...]
    description: str

    @property
    def refs(self) -> list[str]:
        return [ref for view in self.views for ref in view.refs]


# ----------------------------------------------------------------------------- entities

CUSTOMER = EntitySpec(
    "customer",
    "customer_id",
    "int64",
    "A retail customer (Complete Journey household), unique within a tenant",
)
STORE = EntitySpec("store", "store_id", "string", "A store of the tenant")
PRODUCT = EntitySpec("product", "product_id", "int64", "A product of the tenant's catalog")

# ----------------------------------------------------------------------------- customer RFM


def _floats(pairs: list[tuple[str, str]]) -> tuple[FeatureSpec, ...]:
    return tuple(FeatureSpec(name, "float64", text) for name, text in pairs)


CUSTOMER_RFM = FeatureViewSpec(
    entities=(CUSTOMER,),
    topic="rfm",
    table="customer_rfm",
    # Snapshots are monthly; a year plus a margin keeps last year's customers visible to
    # point-in-time joins while a customer unseen for 400 days reads as "no features".
    ttl=timedelta(days=400),
    description="Customer recency / frequency / monetary and basket behaviour",
    features=_floats(
        [
            ("recency_days", "Days from the customer's last transaction to the snapshot time"),
            ("frequency", "Number of transactions before the snapshot time"),
            ("monetary", "Total sales value of those transactions"),
            ("avg_basket_value", "Sales value per transaction (monetary / frequency)"),
            ("avg_items_per_basket", "Mean item count per transaction"),
            ("distinct_products", "Number of distinct products bought"),
            ("discount_share", "Retail discount / (sales + retail discount)"),
            ("coupon_share", "Share of transactions with a coupon discount"),
            ("tenure_days", "Days from the customer's first transaction to the snapshot time"),
            ("weekend_share", "Share of transactions on Saturday or Sunday (UTC)"),
            ("stores_visited", "Number of distinct stores visited"),
        ]
    ),
)

# ----------------------------------------------------------------------------- store x product

# A weekly row carries its own week's units and the 15 weeks before it: 16 weeks of history,
# the longest lookback a forecaster may use (MAX_LOOKBACK in training/models/forecaster.py).
HISTORY_WEEKS = 16
LAG_FEATURES = [f"units_lag_{k}" for k in range(1, HISTORY_WEEKS)]

STORE_PRODUCT_WEEKLY = FeatureViewSpec(
    entities=(STORE, PRODUCT),
    topic="weekly",
    table="store_product_weekly",
    created_field=None,
    # Rows exist only for weeks with sales (a missing week is 0 units). A row older than the
    # history it carries adds nothing: a pair unsold for 16 weeks has an all-zero history, so
    # it expires (and is not loaded into Redis) after HISTORY_WEEKS.
    ttl=timedelta(weeks=HISTORY_WEEKS),
    description="Units, prices, discounts, promotion placements and calendar per store x product x week",
    features=(
        FeatureSpec("week", "int64", "Retailer week number of this row"),
        *_floats(
            [
                ("units", "Units sold in the week"),
                ("sales_value", "Sales value in the week"),
                ("shelf_price", "Mean shelf price per unit before discounts"),
                ("discount_depth", "Retail discount / (sales value + retail discount)"),
                ("display", "1 if the product was on an in-store display that week"),
                ("mailer", "1 if the product was in the weekly mailer that week"),
                ("week_of_year", "ISO week of the week's end date"),
                ("holiday", "US federal holidays in the week"),
            ]
        ),
        *_floats(
            [
                (name, f"Units sold {name.rsplit('_', 1)[1]} week(s) earlier")
                for name in LAG_FEATURES
            ]
        ),
    ),
)

PRODUCT_ATTRIBUTES = FeatureViewSpec(
    entities=(PRODUCT,),
    topic="attributes",
    table="product_attributes",
    created_field=None,
    ttl=timedelta(days=3650),
    description="Merchandise hierarchy of a product",
    features=(
        FeatureSpec("department", "string", "Department (e.g. GROCERY, PRODUCE)"),
        FeatureSpec("product_category", "string", "Category within the department"),
        FeatureSpec("brand", "string", "National or Private brand"),
    ),
)

STORE_ATTRIBUTES = FeatureViewSpec(
    entities=(STORE,),
    topic="attributes",
    table="store_attributes",
    created_field=None,
    ttl=timedelta(days=366),
    description="Size and activity of a store, week by week",
    features=_floats(
        [
            ("weekly_baskets", "Baskets per week so far"),
            ("mean_basket_value", "Mean basket sales value so far"),
            ("products_sold", "Distinct products sold so far"),
            ("first_week", "First week with sales"),
            ("last_week", "Latest week with sales"),
        ]
    ),
)

STORE_DAILY = FeatureViewSpec(
    entities=(STORE,),
    topic="daily",
    table="store_daily_sales",
    created_field=None,
    ttl=timedelta(days=60),
    description="Net sales, transactions and median unit price per store and business day",
    features=(
        FeatureSpec("sales", "float64", "Net sales value of the business day (05:00-05:00 UTC)"),
        FeatureSpec("transactions", "int64", "Distinct transactions of the business day"),
        FeatureSpec("median_unit_price", "float64", "Median sales value per unit of its lines"),
    ),
)

# ----------------------------------------------------------------------------- customer churn


CUSTOMER_CHURN = FeatureViewSpec(
    entities=(CUSTOMER,),
    topic="churn",
    table="customer_churn_features",
    # one snapshot per training cutoff and one "now"; a year keeps both visible
    ttl=timedelta(days=400),
    description="Household behaviour over several windows: recency, frequency, spend, trends, "
    "inter-purchase gaps, discount and coupon use, breadth",
    features=_floats(list(CHURN_FEATURE_DOCS.items())),
)

# ----------------------------------------------------------------------------- feature set
# Customer behaviour, demographics and product statistics (issue 8 part 5; docs/features.md).
# Snapshots share customer_rfm's times (month starts and just after the newest basket); an
# incremental run writes rows only for entities whose values changed, so an entity's newest row
# is its current value.

CUSTOMER_BEHAVIOUR = FeatureViewSpec(
    entities=(CUSTOMER,),
    topic="behaviour",
    table="customer_behaviour",
    ttl=timedelta(days=400),
    description="Basket statistics, department shares of spend, discount and coupon sensitivity",
    features=_floats(list(BEHAVIOUR_FEATURES.items())),
)

CUSTOMER_DEMOGRAPHICS = FeatureViewSpec(
    entities=(CUSTOMER,),
    topic="demographics",
    table="customer_demographics",
    # Demographics hold until they change: a row stays valid for as long as the customer does.
    ttl=timedelta(days=3650),
    description="Household demographics: age, income, household size and composition, "
    "home ownership, marital status (bands as strings, ordered bands as numbers)",
    features=tuple(
        FeatureSpec(name, dtype, text)  # type: ignore[arg-type]
        for name, (dtype, text) in DEMOGRAPHIC_FEATURES.items()
    ),
)

PRODUCT_STATS = FeatureViewSpec(
    entities=(PRODUCT,),
    topic="stats",
    table="product_stats",
    ttl=timedelta(days=400),
    description="Units and revenue over 7/28/91 days, shelf price, display and mailer flags",
    features=tuple(
        FeatureSpec(name, dtype, text)  # type: ignore[arg-type]
        for name, (dtype, text) in PRODUCT_STATS_FEATURES.items()
    ),
)

# ----------------------------------------------------------------------------- services

SEGMENTER_V1 = FeatureServiceSpec(
    "segmenter_v1", (CUSTOMER_RFM,), "Inputs of the customer segmenter, version 1"
)
FORECASTER_V1 = FeatureServiceSpec(
    "forecaster_v1",
    (STORE_PRODUCT_WEEKLY, PRODUCT_ATTRIBUTES, STORE_ATTRIBUTES),
    "Inputs of the demand forecaster, version 1",
)

RECOMMENDER_V1 = FeatureServiceSpec(
    "recommender_v1",
    (PRODUCT_ATTRIBUTES, CUSTOMER_RFM),
    "Content features of the product recommender (its interactions come from the warehouse)",
)
ANOMALY_V1 = FeatureServiceSpec(
    "anomaly_v1", (STORE_DAILY,), "Inputs of the sales-anomaly detector, version 1"
)

CHURN_V1 = FeatureServiceSpec("churn_v1", (CUSTOMER_CHURN,), "Inputs of the churn model, version 1")

# Pricing and promotion impact are estimated from the warehouse's line items, baskets and
# campaign exposure; these services name the entity descriptors their answers are keyed by.
PRICING_V1 = FeatureServiceSpec(
    "pricing_v1",
    (PRODUCT_ATTRIBUTES,),
    "Products of the price-elasticity model (prices and units come from the warehouse)",
)
PROMOTIONS_V1 = FeatureServiceSpec(
    "promotions_v1",
    (CUSTOMER_RFM,),
    "Households of the promotion-impact model (baskets and exposure come from the warehouse)",
)

# The whole customer and product pictures, for analysts and the next model versions.
CUSTOMER_360_V1 = FeatureServiceSpec(
    "customer_360_v1",
    (CUSTOMER_RFM, CUSTOMER_BEHAVIOUR, CUSTOMER_DEMOGRAPHICS, CUSTOMER_CHURN),
    "Every customer view: RFM, basket behaviour, department shares, discount and coupon "
    "sensitivity, demographics, churn behaviour",
)
PRODUCT_360_V1 = FeatureServiceSpec(
    "product_360_v1",
    (PRODUCT_ATTRIBUTES, PRODUCT_STATS),
    "Every product view: merchandise hierarchy, sales over 7/28/91 days, shelf price, "
    "promotion placements",
)

FEATURE_VIEWS: dict[str, FeatureViewSpec] = {
    v.name: v
    for v in (
        CUSTOMER_RFM,
        STORE_PRODUCT_WEEKLY,
        PRODUCT_ATTRIBUTES,
        STORE_ATTRIBUTES,
        STORE_DAILY,
        CUSTOMER_CHURN,
        CUSTOMER_BEHAVIOUR,
        CUSTOMER_DEMOGRAPHICS,
        PRODUCT_STATS,
    )
}
FEATURE_SERVICES: dict[str, FeatureServiceSpec] = {
    s.name: s
    for s in (
        SEGMENTER_V1,
        FORECASTER_V1,
        RECOMMENDER_V1,
        ANOMALY_V1,
        CHURN_V1,
        PRICING_V1,
        PROMOTIONS_V1,
        CUSTOMER_360_V1,
        PRODUCT_360_V1,
    )
}
ENTITIES: dict[str, EntitySpec] = {e.name: e for v in FEATURE_VIEWS.values() for e in v.entities}

# The segmenter's inputs, in the column order of `customer_rfm` and of every vector we hand out.
SEGMENTER_FEATURES: list[str] = CUSTOMER_RFM.feature_names


def feast_project(tenant: str, *, base: str, default_tenant: str) -> str:
    """Feast project of `tenant`: `base` for the default tenant, else `base_<tenant>`."""
    if tenant == default_tenant:
        return base
    return f"{base}_{re.sub(r'[^A-Za-z0-9_]', '_', tenant)}"
