"""Household churn features and labels from line items (PROTOCOLS §5, any retailer's weeks).

Input is the `training.datasets` line-item frame (CJ or a tenant's warehouse). Everything is
derived from the data: the reference time is the end of the last day with any transaction in the
feature weeks, windows count back from the feature end week.

Bad input rules (each counted in `ChurnFeatureSet.skipped_rows` / `filled`):
- rows with a missing customer_id, transaction_timestamp or week are skipped;
- a household with fewer than 2 distinct purchase days has no inter-purchase gap: its gap
  features are filled (mean and max gap = the observed window length in days, sd = 0, last gap
  ratio = 1), i.e. "no repeat seen in the whole window" — counted per feature in `filled`;
- a ratio whose denominator is 0 (e.g. a trend with no baskets in the older window) is filled
  with 0 when the numerator is 0 too, else with the numerator over a 1-unit denominator; these
  are structural, not bad data, and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

LABEL_WEEKS = 9  # churn = silent for the last 9 weeks of the data (CJ: 45..53)
LEAD_WEEKS = 4  # weeks between features and label, unused (CJ: 41..44)
WINDOWS = (4, 13, 26)  # recent-window lengths in weeks

FEATURE_DOCS: dict[str, str] = {
    "recency_days": "days from the last purchase to the reference time",
    "recency_weeks": "feature end week minus the last active week",
    "tenure_days": "days from the first purchase to the reference time",
    "baskets_4w": "distinct transactions in the last 4 weeks",
    "baskets_13w": "distinct transactions in the last 13 weeks",
    "baskets_26w": "distinct transactions in the last 26 weeks",
    "baskets_all": "distinct transactions in all feature weeks",
    "spend_4w": "sales_value in the last 4 weeks",
    "spend_13w": "sales_value in the last 13 weeks",
    "spend_26w": "sales_value in the last 26 weeks",
    "spend_all": "sales_value in all feature weeks",
    "trend_4_13": "baskets per week in the last 4 over the last 13 weeks",
    "trend_13_26": "baskets per week in the last 13 over the last 26 weeks",
    "spend_trend_13_26": "spend per week in the last 13 over the last 26 weeks",
    "active_share_4w": "share of the last 4 weeks with a purchase",
    "active_share_13w": "share of the last 13 weeks with a purchase",
    "active_share_tenure": "share of weeks since the first active week with a purchase",
    "rate_per_week": "baskets per week since the first active week",
    "gap_mean_days": "mean days between distinct purchase days (fill: window length)",
    "gap_sd_days": "sd of days between distinct purchase days (fill: 0)",
    "gap_max_days": "longest gap between distinct purchase days (fill: window length)",
    "recency_over_gap": "recency over the household's mean gap (typical gaps elapsed)",
    "recency_over_max_gap": "recency over the household's longest gap (>1: unusually silent)",
    "last_gap_over_mean": "last gap over the mean gap (fill: 1)",
    "silent9_share": "share of past 9-week windows (since first week) with no purchase",
    "expected_silence": "Poisson probability of no basket in 9 weeks at the household's rate",
    "discount_share": "retail discount over (sales + retail discount)",
    "coupon_basket_share": "share of baskets with a coupon discount",
    "distinct_products": "distinct products bought",
    "distinct_stores": "distinct stores visited",
    "weekend_share": "share of baskets on Saturday or Sunday",
    "avg_basket_value": "spend_all over baskets_all",
    "avg_items_per_basket": "line items per basket",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)
# BG/NBD features: derived inside the churn model from the view's columns (BTYD_INPUTS) and the
# model's fitted parameters, so the view, the online store and batch scoring stay unchanged
BTYD_DOCS: dict[str, str] = {
    "btyd_p_alive": "BG/NBD probability the household is still a customer at the reference time",
    "btyd_p_silent": "BG/NBD probability of no purchase in the label weeks (after the lead weeks)",
    "btyd_expected": "BG/NBD expected purchase days in the label weeks",
}
BTYD_INPUTS = ("tenure_days", "recency_days", "gap_mean_days")
GAP_FEATURES = ("gap_mean_days", "gap_sd_days", "gap_max_days", "last_gap_over_mean")


class ChurnWindows(NamedTuple):
    """Feature end week and label weeks (inclusive); lead weeks in between are unused."""

    feature_end_week: int
    label_start: int
    label_end: int


@dataclass
class ChurnFeatureSet:
    """Features plus the bad-input accounting of how they were built."""

    frame: pd.DataFrame
    skipped_rows: int = 0
    filled: dict[str, int] = field(default_factory=dict)


def windows_for(min_week: int, max_week: int) -> ChurnWindows:
    """Windows from the observed week range: label = last 9 weeks, 4 lead weeks before them."""
    label_start = max_week - LABEL_WEEKS + 1
    feature_end = label_start - LEAD_WEEKS - 1
    if feature_end < min_week + max(WINDOWS) - 1:
        raise ValueError(
            f"weeks {min_week}..{max_week} are too few: churn needs >= "
            f"{max(WINDOWS) + LEAD_WEEKS + LABEL_WEEKS} weeks of history"
        )
    return ChurnWindows(int(feature_end), int(label_start), int(max_week))


def _valid_rows(items: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    ok = items[["customer_id", "transaction_timestamp", "week"]].notna().all(axis=1)
    return items[ok], int((~ok).sum())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, with a 1-unit denominator where den is 0 (0/0 -> 0)."""
    return num / np.where(den > 0, den, 1.0)


def churn_feature_set(items: pd.DataFrame, *, feature_end_week: int) -> ChurnFeatureSet:
    """Features of households active in weeks <= feature_end_week, with skip/fill counts."""
    items, skipped = _valid_rows(items)
    it = items[items["week"] <= feature_end_week]
    if it.empty:
        raise ValueError(f"no transactions in weeks <= {feature_end_week}")
    ts = it["transaction_timestamp"]
    ref = ts.max().normalize() + pd.Timedelta(days=1)  # end of the last day with a transaction
    first_week = int(it["week"].min())
    n_weeks = feature_end_week - first_week + 1

    # one row per transaction: the unit of frequency, timing and basket value
    # (discount signs differ between sources, so magnitudes are used)
    tx = (
        it.assign(
            disc=it["retail_disc"].abs(), coupon=(it["coupon_disc"].abs() > 0).astype(np.float64)
        )
        .groupby("transaction_id", sort=False)
        .agg(
            customer_id=("customer_id", "first"),
            ts=("transaction_timestamp", "min"),
            week=("week", "min"),
            spend=("sales_value", "sum"),
            disc=("disc", "sum"),
            coupon=("coupon", "max"),
            lines=("product_id", "size"),
        )
    )
    cust = np.sort(tx["customer_id"].unique()).astype(np.int64)
    ci = np.searchsorted(cust, tx["customer_id"].to_numpy(np.int64))
    n = len(cust)

    def per_cust(values: np.ndarray) -> np.ndarray:
        return np.bincount(ci, weights=values, minlength=n).astype(np.float64)

    wk = tx["week"].to_numpy(np.int64)
    spend = tx["spend"].to_numpy(np.float64)
    f: dict[str, np.ndarray] = {}
    tx_days = (ref - tx["ts"]).dt.total_seconds().to_numpy() / 86400.0
    last_days = np.full(n, np.inf)
    np.minimum.at(last_days, ci, tx_days)
    first_days = np.zeros(n)
    np.maximum.at(first_days, ci, tx_days)
    f["recency_days"] = last_days
    last_week = np.full(n, -(10**9), dtype=np.int64)
    np.maximum.at(last_week, ci, wk)
    first_wk = np.full(n, 10**9, dtype=np.int64)
    np.minimum.at(first_wk, ci, wk)
    f["recency_weeks"] = (feature_end_week - last_week).astype(np.float64)
    f["tenure_days"] = first_days

    # customers x weeks basket counts: every window feature is a slice of it
    grid = np.zeros((n, n_weeks))
    np.add.at(grid, (ci, wk - first_week), 1.0)
    spend_grid = np.zeros((n, n_weeks))
    np.add.at(spend_grid, (ci, wk - first_week), spend)
    for w in WINDOWS:
        f[f"baskets_{w}w"] = grid[:, -w:].sum(axis=1)
    f["baskets_all"] = grid.sum(axis=1)
    for w in WINDOWS:
        f[f"spend_{w}w"] = spend_grid[:, -w:].sum(axis=1)
    f["spend_all"] = spend_grid.sum(axis=1)
    f["trend_4_13"] = _ratio(f["baskets_4w"] / 4, f["baskets_13w"] / 13)
    f["trend_13_26"] = _ratio(f["baskets_13w"] / 13, f["baskets_26w"] / 26)
    f["spend_trend_13_26"] = _ratio(f["spend_13w"] / 13, f["spend_26w"] / 26)
    active = grid > 0
    f["active_share_4w"] = active[:, -4:].mean(axis=1)
    f["active_share_13w"] = active[:, -13:].mean(axis=1)
    weeks_since_first = (feature_end_week - first_wk + 1).astype(np.float64)
    f["active_share_tenure"] = active.sum(axis=1) / weeks_since_first
    f["rate_per_week"] = f["baskets_all"] / weeks_since_first

    # gaps between distinct purchase days
    day = np.floor(tx_days).astype(np.int64)
    days = pd.DataFrame({"c": ci, "d": day}).drop_duplicates().sort_values(["c", "d"])
    c_arr, d_arr = days["c"].to_numpy(), days["d"].to_numpy()
    same = c_arr[1:] == c_arr[:-1]
    gaps = (d_arr[1:] - d_arr[:-1])[same].astype(np.float64)
    gc = c_arr[1:][same]
    n_gaps = np.bincount(gc, minlength=n).astype(np.float64)
    has_gap = n_gaps > 0
    window_days = float((ref - ts.min()).total_seconds() / 86400.0)
    g_sum = np.bincount(gc, weights=gaps, minlength=n)
    g_sq = np.bincount(gc, weights=gaps**2, minlength=n)
    g_mean = np.where(has_gap, _ratio(g_sum, n_gaps), window_days)
    g_var = np.where(has_gap, _ratio(g_sq, n_gaps) - g_mean**2, 0.0)
    g_max = np.zeros(n)
    np.maximum.at(g_max, gc, gaps)
    # days ascend in "age" order, so the first gap of each customer is the most recent one
    first_of = np.ones(len(gc), dtype=bool)
    first_of[1:] = gc[1:] != gc[:-1]
    last_gap = np.zeros(n)
    last_gap[gc[first_of]] = gaps[first_of]
    f["gap_mean_days"] = g_mean
    f["gap_sd_days"] = np.sqrt(np.clip(g_var, 0.0, None))
    f["gap_max_days"] = np.where(has_gap, g_max, window_days)
    f["recency_over_gap"] = f["recency_days"] / np.maximum(g_mean, 1.0)
    f["recency_over_max_gap"] = f["recency_days"] / np.maximum(f["gap_max_days"], 1.0)
    f["last_gap_over_mean"] = np.where(has_gap, last_gap / np.maximum(g_mean, 1.0), 1.0)

    # empirical label: of the 9-week windows after the first active week, how many were silent
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(active, axis=1)], axis=1)
    starts = np.arange(0, n_weeks - LABEL_WEEKS + 1)
    silent = (cs[:, starts + LABEL_WEEKS] - cs[:, starts]) == 0
    eligible = starts[None, :] >= (first_wk - first_week)[:, None]
    f["silent9_share"] = _ratio((silent & eligible).sum(axis=1), eligible.sum(axis=1))
    f["expected_silence"] = np.exp(-f["rate_per_week"] * LABEL_WEEKS)

    gross = spend_grid.sum(axis=1) + per_cust(tx["disc"].to_numpy(np.float64))
    f["discount_share"] = _ratio(per_cust(tx["disc"].to_numpy(np.float64)), gross)
    f["coupon_basket_share"] = per_cust(tx["coupon"].to_numpy(np.float64)) / f["baskets_all"]
    pairs = it[["customer_id", "product_id"]].drop_duplicates()["customer_id"].to_numpy(np.int64)
    f["distinct_products"] = np.bincount(np.searchsorted(cust, pairs), minlength=n).astype(float)
    stores = it[["customer_id", "store_id"]].drop_duplicates()["customer_id"].to_numpy(np.int64)
    f["distinct_stores"] = np.bincount(np.searchsorted(cust, stores), minlength=n).astype(float)
    weekend = (tx["ts"].dt.dayofweek >= 5).to_numpy(np.float64)
    f["weekend_share"] = per_cust(weekend) / f["baskets_all"]
    f["avg_basket_value"] = f["spend_all"] / f["baskets_all"]
    f["avg_items_per_basket"] = per_cust(tx["lines"].to_numpy(np.float64)) / f["baskets_all"]

    frame = pd.DataFrame({k: f[k].astype(np.float64) for k in FEATURE_NAMES}, index=cust)
    frame.index.name = "customer_id"
    n_fill = int((~has_gap).sum())
    return ChurnFeatureSet(frame, skipped, {k: n_fill for k in GAP_FEATURES} if n_fill else {})


def churn_features(items: pd.DataFrame, *, feature_end_week: int) -> pd.DataFrame:
    """Features (index customer_id, columns FEATURE_NAMES); counts in `.attrs` (see module)."""
    fs = churn_feature_set(items, feature_end_week=feature_end_week)
    fs.frame.attrs.update(skipped_rows=fs.skipped_rows, filled=dict(fs.filled))
    return fs.frame


def churn_labels(
    items: pd.DataFrame, customers: pd.Index, *, label_weeks: tuple[int, int]
) -> pd.Series:
    """True where a customer has no transaction in label weeks [start, end] (inclusive)."""
    items, _ = _valid_rows(items)
    lo, hi = label_weeks
    seen = items.loc[items["week"].between(lo, hi), "customer_id"].unique()
    return pd.Series(~pd.Index(customers).isin(seen), index=pd.Index(customers), name="churned")


def btyd_inputs(
    tenure_days: np.ndarray, recency_days: np.ndarray, gap_mean_days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD summary (x, t_x, T) from the view's columns, in weeks of purchase *days*.

    x = distinct purchase days - 1: the gap features are taken over distinct purchase days and
    floor(tenure) - floor(recency) is the sum of those gaps, so x = that span over the mean gap
    (0 for a one-day household, whose filled mean gap is the window length). t_x = weeks from
    the first to the last purchase, T = weeks from the first purchase to the reference time.
    NaN inputs (a gap in the online row) give NaN outputs.
    """
    tenure = np.asarray(tenure_days, dtype=np.float64)
    recency = np.asarray(recency_days, dtype=np.float64)
    span = np.floor(tenure) - np.floor(recency)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.round(span / np.asarray(gap_mean_days, dtype=np.float64))
    x = np.where(span > 0, np.maximum(x, 1.0), np.where(np.isnan(span), np.nan, 0.0))
    t_x = np.clip(tenure - recency, 0.0, None) / 7.0
    return x, t_x, tenure / 7.0
