"""Point-in-time training sets from Feast's offline store (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from core.errors import ValidationFailed
from core.tenants import validate_tenant
from features.catalog import (
    CUSTOMER_RFM,
    FORECASTER_V1,
    SEGMENTER_FEATURES,
    SEGMENTER_V1,
    STORE_PRODUCT_WEEKLY,
    FeatureServiceSpec,
)
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


# ----------------------------------------------------------------------------- forecaster

WEEKLY = STORE_PRODUCT_WEEKLY
# Covariates that describe the week itself: a week without a row (no sales) has none of them.
_SALES_COVARIATES = ("sales_value", "discount_depth", "display", "mailer")


def _series_sql(tenant: str, *, first_week: int, last_week: int, n_series: int) -> str:
    """The tenant's top `n_series` (store, product) pairs by units over the weeks given."""
    validate_tenant(tenant)
    return (
        f"SELECT store_id, product_id FROM {WEEKLY.table}"
        f" WHERE tenant_id = '{tenant}' AND week BETWEEN {int(first_week)} AND {int(last_week)}"
        f" GROUP BY store_id, product_id"
        f" ORDER BY sum(units) DESC, store_id, product_id LIMIT {int(n_series)}"
    )


def forecast_frame(
    *,
    tenant: str,
    first_week: int,
    last_week: int,
    n_series: int,
    rank_until_week: int | None = None,
) -> pd.DataFrame:
    """The forecaster's training set: one row per (store, product, week) for the top
    `n_series` pairs (ranked by units up to `rank_until_week`, default `last_week`) and every
    week in first_week..last_week, through Feast's point-in-time join over `forecaster_v1`.

    Zero-fill rule (documented in docs/forecast-features.md): the weekly view has rows only
    for weeks with sales, so the join returns the newest earlier row for a week without one;
    such a week gets units 0 and no sales-side covariates (sales value, discount, display,
    mailer = 0), while the shelf price carries forward from the last week with sales.
    Columns: store_id, product_id, week, units, the weekly view's covariates, department,
    product_category, brand.
    """
    validate_tenant(tenant)
    pairs = _series_sql(
        tenant, first_week=first_week, last_week=rank_until_week or last_week, n_series=n_series
    )
    entity_sql = (
        f"SELECT p.store_id, p.product_id, c.week AS target_week,"
        f" c.week_end AS event_timestamp FROM ({pairs}) p CROSS JOIN calendar_weeks c"
        f" WHERE c.tenant_id = '{tenant}' AND c.week BETWEEN {int(first_week)} AND {int(last_week)}"
    )
    frame = historical_features(FORECASTER_V1, entity_sql, tenant=tenant)
    if frame.empty:
        raise ValidationFailed(
            f"no store x product weekly features for tenant {tenant!r} in weeks "
            f"{first_week}..{last_week}: run `retailpulse features materialize` first",
            details={"tenant": tenant, "weeks": [first_week, last_week]},
        )
    stale = frame["week"].isna() | (frame["week"] != frame["target_week"])
    frame.loc[stale, "units"] = 0.0
    frame.loc[stale, list(_SALES_COVARIATES)] = 0.0
    frame["week"] = frame["target_week"].astype(int)
    calendar = _calendar(tenant, first_week, last_week)
    frame = frame.drop(columns=["week_of_year", "holiday"]).merge(calendar, on="week", how="left")
    for column in ("department", "product_category", "brand"):
        frame[column] = frame[column].fillna("UNKNOWN").astype(str)
    frame["shelf_price"] = (
        frame.sort_values("week").groupby(["store_id", "product_id"])["shelf_price"].ffill()
    )
    numeric = ["units", *_SALES_COVARIATES, "shelf_price"]
    frame[numeric] = frame[numeric].astype(float).fillna(0.0)
    columns = [
        "store_id", "product_id", "week", "units", "sales_value", "shelf_price",
        "discount_depth", "display", "mailer", "week_of_year", "holiday",
        "department", "product_category", "brand",
    ]  # fmt: skip
    return frame[columns].sort_values(["store_id", "product_id", "week"]).reset_index(drop=True)


def _calendar(tenant: str, first_week: int, last_week: int) -> pd.DataFrame:
    from core.db import connect
    from features.store import service_urls

    with connect(service_urls()[0]) as conn:
        rows = conn.execute(
            "SELECT week, week_of_year, holiday_count FROM calendar_weeks"
            " WHERE tenant_id = %s AND week BETWEEN %s AND %s",
            (tenant, first_week, last_week),
        ).fetchall()
    return pd.DataFrame(rows, columns=["week", "week_of_year", "holiday"]).astype(float).astype(
        {"week": int}
    )
