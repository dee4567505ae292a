"""Point-in-time training sets from Feast's offline store (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from core.tenants import validate_tenant
from features.names import FEATURE_SERVICE, JOIN_KEY, RFM_TABLE, SEGMENTER_FEATURES
from features.store import get_feature_store, rfm_time_range


def _entity_sql(tenant: str, as_of: datetime) -> str:
    """Entity rows as SQL: customers with a snapshot at or before `as_of`, stamped `as_of`.

    Feast uploads a DataFrame entity_df into a fresh table that has no planner statistics;
    on the full data PostgreSQL then picks nested loops and the point-in-time join takes
    minutes. A query over customer_rfm (ANALYZEd after every write) plans as hash joins.
    """
    validate_tenant(tenant)
    stamp = as_of.astimezone(UTC).isoformat()
    return (
        f"SELECT DISTINCT customer_id AS {JOIN_KEY}, timestamptz '{stamp}' AS event_timestamp"
        f" FROM {RFM_TABLE} WHERE tenant_id = '{tenant}'"
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
    store = get_feature_store(tenant)
    service = store.get_feature_service(FEATURE_SERVICE)
    job = store.get_historical_features(entity_df=_entity_sql(tenant, as_of), features=service)
    frame = job.to_df()
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.dropna(subset=SEGMENTER_FEATURES, how="all")
    return frame[columns].sort_values(JOIN_KEY).reset_index(drop=True)
