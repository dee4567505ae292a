"""Churn feature snapshots in the warehouse (`customer_churn_features`, Feast `customer_churn_fv`).

One snapshot per as-of time: the training cutoff (end of the last feature week of the churn
windows) and "now" (end of the newest day with sales), so point-in-time training sets and
online serving read the same table. A rewrite replaces the tenant's snapshots in one
transaction: a failure midway leaves the previous snapshots in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import psycopg

from core.bulk import copy_frame
from features.catalog import CUSTOMER_CHURN, TIMESTAMP_FIELD


def write_churn_snapshots(
    conn: psycopg.Connection, *, tenant: str, snapshots: Sequence[tuple[datetime, pd.DataFrame]]
) -> int:
    """Replace the tenant's churn snapshots with `snapshots` [(as_of, frame indexed by
    customer_id with the view's features)]; returns rows written. Non-finite values are
    rejected (the feature code has a fill rule for every gap)."""
    names = CUSTOMER_CHURN.feature_names
    parts = []
    for as_of, frame in snapshots:
        if as_of.tzinfo is None:
            raise ValueError(f"snapshot time {as_of} must be timezone-aware")
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"churn snapshot at {as_of} lacks features {missing}")
        values = frame[names].to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            cols = sorted({names[j] for j in np.nonzero(bad)[1]})
            raise ValueError(f"churn snapshot at {as_of}: non-finite values in {cols}")
        part = frame[names].astype(np.float64).reset_index()
        part[TIMESTAMP_FIELD] = as_of
        part["tenant_id"] = tenant
        parts.append(part)
    columns = ["tenant_id", "customer_id", TIMESTAMP_FIELD, *names]
    with conn.transaction():
        conn.execute("DELETE FROM customer_churn_features WHERE tenant_id = %s", (tenant,))
        written = copy_frame(conn, "customer_churn_features", pd.concat(parts), columns)
        conn.execute("ANALYZE customer_churn_features")
    return written
