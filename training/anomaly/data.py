"""Store x business-day panel of sales (and context signals) from line items.

Rules (PROTOCOLS §4, written so they hold for any retailer's dates):

- Business date = transaction_timestamp - 5 h (a 01:00 sale belongs to the previous trading day).
- The panel spans the first..last business date present (or `start`..`end` when given); a
  store-day with no line item is 0 sales and 0 transactions.
- Bad rows are skipped and counted in `DailyPanel.skipped`: missing store_id or timestamp
  (`missing_key`), non-finite sales_value (`bad_sales_value`), and rows outside `start..end`
  (`outside_range`). Negative sales_value (returns) is kept: daily sales are net sales.
- avg_basket = sales / transactions, 0 on a day with no transaction.
- price_index = median unit price (sales_value / quantity over lines with quantity > 0) of the
  store-day, divided by the median of that store's daily values. A median of lines is used
  because a few lines with huge quantities (fuel) would swamp a ratio of sums. NaN where the
  store-day has no line with quantity > 0 (no price observed); consumers read NaN as 1.0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BUSINESS_DAY_OFFSET = pd.Timedelta(hours=5)
WINDOW_DAYS = 60


@dataclass(frozen=True)
class DailyPanel:
    """Dense [stores x days] daily signals of one retailer."""

    store_ids: np.ndarray  # [S] str
    dates: np.ndarray  # [D] datetime64[D], consecutive days
    sales: np.ndarray  # [S, D] float64, net sales_value
    transactions: np.ndarray  # [S, D] float64, distinct transaction_id
    avg_basket: np.ndarray  # [S, D] float64, sales / transactions (0 without transactions)
    price_index: np.ndarray  # [S, D] float64, see module docstring (NaN = no price observed)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def dow(self) -> np.ndarray:
        """Day of week per date, Monday = 0."""
        # 1970-01-01 was a Thursday (3)
        return (self.dates.astype("datetime64[D]").astype(np.int64) + 3) % 7


def _store_day_codes(
    stores: np.ndarray, days: np.ndarray, store_ids: np.ndarray, start: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of each line item in the dense panel."""
    s_idx = np.searchsorted(store_ids, stores)
    d_idx = (days - start).astype(np.int64)
    return s_idx, d_idx


def daily_panel(
    items: pd.DataFrame,
    *,
    start: str | np.datetime64 | None = None,
    end: str | np.datetime64 | None = None,
) -> DailyPanel:
    """Build the panel from line items (`training.datasets.ITEM_COLUMNS` shape)."""
    skipped = {"missing_key": 0, "bad_sales_value": 0, "outside_range": 0}
    ts = pd.to_datetime(items["transaction_timestamp"])
    store = items["store_id"]
    value = pd.to_numeric(items["sales_value"], errors="coerce").to_numpy(np.float64)
    missing = ts.isna().to_numpy() | store.isna().to_numpy()
    bad_value = ~missing & ~np.isfinite(value)
    skipped["missing_key"] = int(missing.sum())
    skipped["bad_sales_value"] = int(bad_value.sum())
    ok = ~(missing | bad_value)

    days = (ts[ok] - BUSINESS_DAY_OFFSET).to_numpy().astype("datetime64[D]")
    lo = np.datetime64(start, "D") if start is not None else (days.min() if len(days) else None)
    hi = np.datetime64(end, "D") if end is not None else (days.max() if len(days) else None)
    if lo is None or hi is None:
        raise ValueError("no usable line items: cannot derive the panel's dates")
    if hi < lo:
        raise ValueError(f"end {hi} is before start {lo}")
    in_range = (days >= lo) & (days <= hi)
    skipped["outside_range"] = int((~in_range).sum())

    frame = pd.DataFrame(
        {
            "store": store[ok].astype(str).to_numpy()[in_range],
            "day": days[in_range],
            "tx": items["transaction_id"].to_numpy()[ok][in_range],
            "value": value[ok][in_range],
            "qty": pd.to_numeric(items["quantity"], errors="coerce").to_numpy(np.float64)[ok][
                in_range
            ],
        }
    )
    dates = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    store_ids = np.sort(frame["store"].unique()).astype(str)
    shape = (len(store_ids), len(dates))
    sales = np.zeros(shape)
    transactions = np.zeros(shape)
    price = np.full(shape, np.nan)

    by = frame.groupby(["store", "day"], sort=False)
    agg = by.agg(value=("value", "sum"), tx=("tx", "nunique"))
    s_idx, d_idx = _store_day_codes(
        agg.index.get_level_values(0).to_numpy(str),
        agg.index.get_level_values(1).to_numpy("datetime64[D]"),
        store_ids,
        lo,
    )
    sales[s_idx, d_idx] = agg["value"].to_numpy()
    transactions[s_idx, d_idx] = agg["tx"].to_numpy()

    priced = frame[frame["qty"] > 0]
    unit = (priced["value"] / priced["qty"]).groupby([priced["store"], priced["day"]]).median()
    if len(unit):
        s_idx, d_idx = _store_day_codes(
            unit.index.get_level_values(0).to_numpy(str),
            unit.index.get_level_values(1).to_numpy("datetime64[D]"),
            store_ids,
            lo,
        )
        price[s_idx, d_idx] = unit.to_numpy()
    return assemble(store_ids, dates, sales, transactions, price, skipped)


def assemble(
    store_ids: np.ndarray,
    dates: np.ndarray,
    sales: np.ndarray,
    transactions: np.ndarray,
    unit_price: np.ndarray,
    skipped: dict[str, int] | None = None,
) -> DailyPanel:
    """The panel from dense sales, transactions and median unit prices (NaN = none): derives
    the average basket and the price index by the module's rules."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a store without any price: NaN index
        positive = np.where(unit_price > 0, unit_price, np.nan)
        store_median = np.nanmedian(positive, axis=1, keepdims=True)
        price_index = np.where(store_median > 0, unit_price / store_median, np.nan)
        avg_basket = np.where(transactions > 0, sales / np.maximum(transactions, 1), 0.0)
    return DailyPanel(
        store_ids=store_ids,
        dates=dates,
        sales=sales,
        transactions=transactions,
        avg_basket=avg_basket,
        price_index=price_index,
        skipped=dict(skipped or {}),
    )


def eligible_stores(panel: DailyPanel, min_days: int = 300) -> np.ndarray:
    """Boolean mask [S]: stores with at least `min_days` days of sales > 0 (CJ: 94 stores)."""
    return (panel.sales > 0).sum(axis=1) >= min_days


def windows_for(panel: DailyPanel, window_days: int = WINDOW_DAYS) -> tuple[slice, slice]:
    """(pre_window, window): the last `window_days` days are the window, all earlier days pre."""
    n = len(panel.dates)
    if n <= window_days:
        raise ValueError(f"panel has {n} days; need more than the {window_days}-day window")
    return slice(0, n - window_days), slice(n - window_days, n)


def head(panel: DailyPanel, days: int) -> DailyPanel:
    """The panel's first `days` days (a later window cut off, never read)."""
    return DailyPanel(
        store_ids=panel.store_ids,
        dates=panel.dates[:days],
        sales=panel.sales[:, :days],
        transactions=panel.transactions[:, :days],
        avg_basket=panel.avg_basket[:, :days],
        price_index=panel.price_index[:, :days],
        skipped=dict(panel.skipped),
    )


def subset(panel: DailyPanel, stores: np.ndarray) -> DailyPanel:
    """The panel restricted to a boolean mask or index array of stores."""
    return DailyPanel(
        store_ids=panel.store_ids[stores],
        dates=panel.dates,
        sales=panel.sales[stores],
        transactions=panel.transactions[stores],
        avg_basket=panel.avg_basket[stores],
        price_index=panel.price_index[stores],
        skipped=dict(panel.skipped),
    )
