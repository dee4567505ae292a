"""Point-in-time training sets from Feast's offline store (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import psycopg

from core.db import libpq_url
from features.names import FEATURE_SERVICE, JOIN_KEY, RFM_TABLE, SEGMENTER_FEATURES
from features.store import get_feature_store, rfm_time_range, service_urls


def _customers(tenant: str, as_of: datetime) -> list[int]:
    """Customers of `tenant` with an RFM snapshot at or before `as_of`."""
    database_url, _ = service_urls()
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(
            f"SELECT DISTINCT customer_id FROM {RFM_TABLE}"
            " WHERE tenant_id = %s AND event_timestamp <= %s ORDER BY 1",
            (tenant, as_of),
        ).fetchall()
    return [row[0] for row in rows]


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
    customers = _customers(tenant, as_of)
    if not customers:
        return pd.DataFrame(columns=columns)
    entity_df = pd.DataFrame(
        {JOIN_KEY: pd.Series(customers, dtype="int64"), "event_timestamp": pd.Timestamp(as_of)}
    )
    store = get_feature_store(tenant)
    service = store.get_feature_service(FEATURE_SERVICE)
    frame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    frame = frame.dropna(subset=SEGMENTER_FEATURES, how="all")
    return frame[columns].sort_values(JOIN_KEY).reset_index(drop=True)
