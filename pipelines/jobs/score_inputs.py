"""What each batch scorer reads: the input rows of every entity, from the warehouse tables
Feast's offline store reads (the feature views' own tables), plus the scorer's arguments.

Each builder returns `Inputs`: rows (a DataFrame of scalar columns, or a list of dicts when a
row carries arrays), the scorer class of training/scoring.py and its extra constructor
arguments, and notes for the summary (entities left out and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from core.errors import ValidationFailed
from features.catalog import CUSTOMER_CHURN, SEGMENTER_FEATURES


@dataclass
class Inputs:
    rows: pd.DataFrame | list[dict[str, Any]]
    scorer: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    work: int = 0  # units of model work (rows, or household x candidate pairs)
    meta: dict[str, Any] = field(default_factory=dict)  # extra fields of the Redis meta key

    def __len__(self) -> int:
        return len(self.rows)


def _materialize_first(what: str, tenant: str) -> ValidationFailed:
    return ValidationFailed(
        f"no {what} for tenant {tenant!r}: run `retailpulse features materialize` first",
        details={"tenant": tenant},
    )


def segments(conn: psycopg.Connection, tenant: str, bundle: Any, **_: Any) -> Inputs:
    """Every customer's newest RFM snapshot (the `customer_rfm` view's table)."""
    from training.scoring import SegmentScorer

    cols = ", ".join(SEGMENTER_FEATURES)
    rows = conn.execute(
        f"SELECT DISTINCT ON (customer_id) customer_id, {cols}, event_timestamp"
        " FROM customer_rfm WHERE tenant_id = %s ORDER BY customer_id, event_timestamp DESC",
        (tenant,),
    ).fetchall()
    if not rows:
        raise _materialize_first("customer RFM features", tenant)
    frame = pd.DataFrame(rows, columns=["customer_id", *SEGMENTER_FEATURES, "as_of"])
    frame = frame.drop(columns="as_of").astype({n: "float64" for n in SEGMENTER_FEATURES})
    return Inputs(frame, SegmentScorer, work=len(frame))


def churn(conn: psycopg.Connection, tenant: str, bundle: Any, **_: Any) -> Inputs:
    """Every customer of the newest churn snapshot ("now", `customer_churn_features`)."""
    from training.scoring import ChurnScorer

    names = CUSTOMER_CHURN.feature_names
    rows = conn.execute(
        f"SELECT customer_id, {', '.join(names)} FROM customer_churn_features"
        " WHERE tenant_id = %s AND event_timestamp ="
        " (SELECT max(event_timestamp) FROM customer_churn_features WHERE tenant_id = %s)"
        " ORDER BY customer_id",
        (tenant, tenant),
    ).fetchall()
    if not rows:
        raise _materialize_first("churn features", tenant)
    frame = pd.DataFrame(rows, columns=["customer_id", *names]).astype(
        {n: "float64" for n in names}
    )
    return Inputs(frame, ChurnScorer, work=len(frame))


def recommendations(
    conn: psycopg.Connection, tenant: str, bundle: Any, *, limit: int = 20, **_: Any
) -> Inputs:
    """Every household the model knows × its precomputed candidate set."""
    from training.scoring import RecommendationScorer

    ids = np.asarray(bundle.customer_ids, np.int64)
    frame = pd.DataFrame({"customer_id": ids, "user": np.arange(len(ids), dtype=np.int64)})
    pairs = len(ids) * int(bundle.candidate_items.shape[1])
    return Inputs(frame, RecommendationScorer, {"limit": limit}, work=pairs)


def forecasts(
    conn: psycopg.Connection, tenant: str, bundle: Any, *, horizon: int = 4, **_: Any
) -> Inputs:
    """The forecaster's series (its training window's top pairs) with their last 16 weeks,
    static values and covariates; the origin is the model's last week. The meta key records
    the state of those inputs (read first), the origin and the horizon: the forecast route
    answers from these scores only while all three still hold."""
    from features.catalog import HISTORY_WEEKS
    from features.offline import _series_sql, forecast_frame, promotion_flags
    from features.watermarks import forecast_state
    from training.scoring import ForecastScorer

    window = bundle.window
    if not {"first_week", "last_week", "n_series"} <= set(window):
        raise ValidationFailed("this forecaster version records no data window: retrain it")
    state = forecast_state(conn, tenant=tenant)
    origin, n_series = int(window["last_week"]), int(window["n_series"])
    first = origin - HISTORY_WEEKS + 1
    frame = forecast_frame(
        tenant=tenant,
        first_week=first,
        last_week=origin,
        n_series=n_series,
        rank_until_week=origin,
    )
    past_names, future_names = bundle.covariates, bundle.future_covariates
    plan = None
    if future_names:
        pairs = _series_sql(tenant, first_week=first, last_week=origin, n_series=n_series)
        plan = promotion_flags(tenant, pairs_sql=pairs, first_week=origin + 1, last_week=origin + 8)
        plan = plan.set_index(["store_id", "product_id", "week"])
    rows = []
    for (store, product), g in frame.groupby(["store_id", "product_id"], sort=True):
        g = g.sort_values("week")
        row: dict[str, Any] = {
            "store_id": str(store),
            "product_id": int(product),
            "history": g["units"].to_numpy(np.float32),
        }
        for name in bundle.static_names:
            row[f"static_{name}"] = str(store) if name == "store_id" else str(g[name].iloc[-1])
        if past_names:
            row["past"] = g[past_names].to_numpy(np.float32)
        if future_names:
            fut = np.zeros((8, len(future_names)), np.float32)
            for j, name in enumerate(future_names):
                if name in ("display", "mailer"):
                    for h in range(8):
                        key = (str(store), int(product), origin + 1 + h)
                        if key in plan.index:
                            fut[h, j] = float(plan.at[key, name])
            row["future"] = fut
        rows.append(row)
    kwargs = {"origin": origin, "horizon": horizon}
    meta = {"inputsState": state, "originWeek": origin, "horizon": horizon}
    return Inputs(rows, ForecastScorer, kwargs, work=len(rows), meta=meta)


def anomalies(
    conn: psycopg.Connection, tenant: str, bundle: Any, *, days: int = 28, **_: Any
) -> Inputs:
    """Every store's daily series over the last `days` business days plus the detectors'
    look-back (the `store_daily_sales` rollup)."""
    from features.store_daily import date_range, load_store_daily
    from training.anomaly_run import LOOKBACK_DAYS
    from training.scoring import AnomalyScorer

    span = date_range(conn, tenant=tenant)
    if span is None:
        raise _materialize_first("store x day sales", tenant)
    last = span[1]
    start = last - timedelta(days=days + LOOKBACK_DAYS - 1)
    frame = load_store_daily(conn, tenant=tenant, start=start, end=last)
    dates = np.arange(np.datetime64(start, "D"), np.datetime64(last, "D") + 1)
    index = {d: i for i, d in enumerate(dates)}
    rows = []
    for store, g in frame.groupby("store_id", sort=True):
        sales, tx = np.zeros(len(dates)), np.zeros(len(dates))
        price = np.full(len(dates), np.nan)
        cols = g["business_date"].to_numpy("datetime64[D]")
        at = np.array([index[d] for d in cols], dtype=np.int64)
        sales[at] = g["sales"].to_numpy(np.float64)
        tx[at] = g["transactions"].to_numpy(np.float64)
        price[at] = g["median_unit_price"].to_numpy(np.float64)
        rows.append({"store_id": str(store), "sales": sales, "transactions": tx, "price": price})
    kwargs = {"dates": dates, "days": days}
    return Inputs(
        rows,
        AnomalyScorer,
        kwargs,
        {"window": f"{last - timedelta(days=days - 1)}..{last}"},
        len(rows),
    )


BUILDERS = {
    "segments": segments,
    "churn": churn,
    "recommendations": recommendations,
    "forecasts": forecasts,
    "anomalies": anomalies,
}
