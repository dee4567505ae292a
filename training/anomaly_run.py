"""The anomaly detector on a tenant's warehouse: its store x day panel from the SQL rollup.

`panel_from_rollup` turns `store_daily_sales` rows (features/store_daily.py) into the same
`DailyPanel` that `training.anomaly.data.daily_panel` builds from line items, so the protocol
code, the platform's training run and the serving deployment score identical series (an
integration test compares both on the sample warehouse).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from training.anomaly.data import DailyPanel, assemble


def panel_from_rollup(
    frame: pd.DataFrame,
    *,
    start: date | np.datetime64 | None = None,
    end: date | np.datetime64 | None = None,
    store_ids: list[str] | None = None,
) -> DailyPanel:
    """Dense panel over `start`..`end` (default: the rows' span) of `store_ids` (default: the
    rows' stores); a store-day without a row sold 0."""
    days = frame["business_date"].to_numpy("datetime64[D]")
    lo = np.datetime64(start, "D") if start is not None else days.min()
    hi = np.datetime64(end, "D") if end is not None else days.max()
    dates = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    stores = np.array(sorted(store_ids if store_ids is not None else frame["store_id"].unique()))
    stores = stores.astype(str)
    shape = (len(stores), len(dates))
    sales, transactions = np.zeros(shape), np.zeros(shape)
    price = np.full(shape, np.nan)
    keep = (days >= lo) & (days <= hi) & np.isin(frame["store_id"].to_numpy(str), stores)
    rows = frame[keep]
    s_idx = np.searchsorted(stores, rows["store_id"].to_numpy(str))
    d_idx = (rows["business_date"].to_numpy("datetime64[D]") - lo).astype(np.int64)
    sales[s_idx, d_idx] = rows["sales"].to_numpy(np.float64)
    transactions[s_idx, d_idx] = rows["transactions"].to_numpy(np.float64)
    price[s_idx, d_idx] = rows["median_unit_price"].to_numpy(np.float64)
    return assemble(stores, dates, sales, transactions, price)


def tenant_panel(tenant: str, url: str | None = None) -> DailyPanel:
    """The tenant's whole store x day panel from the warehouse rollup."""
    from core.db import connect
    from core.errors import ValidationFailed
    from features.store_daily import load_store_daily

    with connect(url) as conn:
        frame = load_store_daily(conn, tenant=tenant)
    if frame.empty:
        raise ValidationFailed(
            f"no store x day sales for tenant {tenant!r}: run `retailpulse features materialize`",
            details={"tenant": tenant},
        )
    return panel_from_rollup(frame)
