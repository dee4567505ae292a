"""Feast definitions for customer features (declarative: constructing these objects does no I/O).

Tenancy: one Feast project per tenant (see `features.store.project_for`). The entity key is the
bare `customer_id`, so each tenant's source must only return that tenant's rows; the tenant is
therefore part of the source query, and `feature_objects(tenant)` builds the tenant's objects.
Feast stores the query in the registry, so applying for tenant A never changes tenant B.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.types import Float64

from core.tenants import validate_tenant
from features.names import (
    ENTITY,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    JOIN_KEY,
    RFM_TABLE,
    SEGMENTER_FEATURES,
    SOURCE,
    TIMESTAMP_FIELD,
)

# Snapshots are monthly; a year plus a margin keeps last year's customers visible to
# point-in-time joins while a customer unseen for 400 days reads as "no features".
RFM_TTL = timedelta(days=400)

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "recency_days": "Days from the customer's last transaction to the snapshot time",
    "frequency": "Number of transactions before the snapshot time",
    "monetary": "Total sales value of those transactions",
    "avg_basket_value": "Sales value per transaction (monetary / frequency)",
    "avg_items_per_basket": "Mean item count per transaction",
    "distinct_products": "Number of distinct products bought",
    "discount_share": "Retail discount / (sales + retail discount)",
    "coupon_share": "Share of transactions with a coupon discount",
    "tenure_days": "Days from the customer's first transaction to the snapshot time",
    "weekend_share": "Share of transactions on Saturday or Sunday (UTC)",
    "stores_visited": "Number of distinct stores visited",
}

customer = Entity(
    name=ENTITY,
    join_keys=[JOIN_KEY],
    value_type=ValueType.INT64,
    description="A retail customer (Complete Journey household), unique within a tenant",
)


def _source_query(tenant: str) -> str:
    validate_tenant(tenant)
    columns = ", ".join([JOIN_KEY, TIMESTAMP_FIELD, "created_at", *SEGMENTER_FEATURES])
    # A valid tenant id admits no quote, so the literal cannot break out of the string.
    return f"SELECT {columns} FROM {RFM_TABLE} WHERE tenant_id = '{tenant}'"


def customer_rfm_source(tenant: str) -> PostgreSQLSource:
    """The tenant's rows of the warehouse table `customer_rfm`."""
    return PostgreSQLSource(
        name=SOURCE,
        query=_source_query(tenant),
        timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column="created_at",
        description=f"Monthly RFM snapshots of tenant {tenant} (features/rfm.py)",
        tags={"tenant": tenant},
    )


def customer_rfm_fv(tenant: str) -> FeatureView:
    """RFM and basket-behaviour features per customer."""
    return FeatureView(
        name=FEATURE_VIEW,
        entities=[customer],
        ttl=RFM_TTL,
        schema=[
            Field(name=name, dtype=Float64, description=FEATURE_DESCRIPTIONS[name])
            for name in SEGMENTER_FEATURES
        ],
        source=customer_rfm_source(tenant),
        online=True,
        description="Customer recency / frequency / monetary and basket behaviour",
        tags={"tenant": tenant},
    )


def feature_objects(tenant: str) -> list[Entity | PostgreSQLSource | FeatureView | FeatureService]:
    """Every Feast object of `tenant`'s project, in the order `FeatureStore.apply` takes."""
    fv = customer_rfm_fv(tenant)
    segmenter = FeatureService(
        name=FEATURE_SERVICE,
        features=[fv],
        description="Inputs of the customer segmenter, version 1",
    )
    return [customer, fv.batch_source, fv, segmenter]
