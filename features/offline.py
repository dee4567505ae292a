"""Point-in-time training sets from Feast's offline store (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from core.tenants import validate_tenant
from features.catalog import CUSTOMER_RFM, SEGMENTER_FEATURES, SEGMENTER_V1, FeatureServiceSpec
from features.store import get_feature_store, rfm_time_range

JOIN_KEY = CUSTOMER_RFM.join_keys[0]


def historical_features(
    service: FeatureServiceSpec, entity_sql: str, *, tenant: str
) -> pd.DataFrame:
    """Feast point-in-time join of `service`'s views onto the entity rows `entity_sql` returns.

    `entity_sql` selects the entity's join keys and `event_timestamp`. A query (not a DataFrame)
    keeps the join fast: Feast uploads a DataFrame entity_df into a fresh table without planner
    statistics, and PostgreSQL then picks nested loops (minutes on the full data); a query over
    an ANALYZEd feature table plans as hash joins.
    """
    store = get_feature_store(tenant)
    job = store.get_historical_features(
        entity_df=entity_sql, features=store.get_feature_service(service.name)
    )
    return job.to_df()


def _entity_sql(tenant: str, as_of: datetime) -> str:
    """Entity rows as SQL: customers with a snapshot at or before `as_of`, stamped `as_of`."""
    validate_tenant(tenant)
    stamp = as_of.astimezone(UTC).isoformat()
    return (
        f"SELECT DISTINCT customer_id AS {JOIN_KEY}, timestamptz '{stamp}' AS event_timestamp"
        f" FROM {CUSTOMER_RFM.table} WHERE tenant_id = '{tenant}'"
        f" AND event_timestamp <= timestamptz '{stamp}'"
    )


def training_frame(*, tenant: str, as_of: datetime | None = None) -> pd.DataFrame:
    """customer_id + SEGMENTER_FEATURES of every customer of `tenant` as known at `as_of`.

    `as_of` defaults to the tenant's newest snapshot. Values come from Feast's point-in-time
    join over the feature service `segmenter_v1`: for each customer the newest snapshot with
    event_timestamp <= as_of (within the view's TTL). Customers without such a snapshot (no
    transaction before as_of) are left out.
    """
    if as_of is None:
        as_of = rfm_time_range(tenant)[1]
    columns = [JOIN_KEY, *SEGMENTER_FEATURES]
    if as_of is None:
        return pd.DataFrame(columns=columns)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    frame = historical_features(SEGMENTER_V1, _entity_sql(tenant, as_of), tenant=tenant)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.dropna(subset=SEGMENTER_FEATURES, how="all")
    return frame[columns].sort_values(JOIN_KEY).reset_index(drop=True)
