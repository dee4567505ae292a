"""The rollups of a tenant's first load, computed from the writer's own frames.

On a tenant's first load (a file import or `ingest completejourney` into a tenant without
baskets) the writer holds in memory every basket and line the rollups will count. Reading them
back from the warehouse to aggregate them in SQL (`rollups.rebuild`) was the largest stage of
the import: 3.0 s of a 4.8 s import of 500k lines (bench/import_file.py), most of it numeric
sums and the line × category join. Here the same rows are aggregated with numpy in integer
cents (exact, as numeric(14, 2) is) and COPYed in. The grains, business day and week, the
category ids (`analytics_categories`, assigned by the same SQL) and the packed basket sets are
those of analytics/rollups.py; tests/integration/test_rollup_frames.py compares every table
with a rebuild.

The writer says it holds the tenant's whole data by setting `Landed.first_load`; `refresh`
checks that the tenant's baskets are exactly these (else it rebuilds as before).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from analytics import rollup_sql as q
from analytics.rollup_sql import MAX_CATEGORY_ID, UNKNOWN
from core.bulk import copy_frame
from features.store_daily import BUSINESS_DAY_HOURS

TABLES = ("sales_hourly", "sales_daily", "product_weekly", "category_daily", "basket_sets")
BASKET_COLUMNS = ("transaction_id", "store_id", "customer_id", "transaction_timestamp",
                  "total_sales", "total_discount", "item_count")  # fmt: skip
LINE_COLUMNS = ("transaction_id", "product_id", "quantity", "sales_value", "retail_disc",
                "coupon_disc", "coupon_match_disc")  # fmt: skip


def holds_every_basket(conn: psycopg.Connection, tenant: str, baskets: pd.DataFrame) -> bool:
    """True when the tenant's baskets in the warehouse are as many as `baskets` (the writer
    inserted them all in this transaction and the tenant had none before)."""
    n = conn.execute(
        "SELECT count(*) FROM transactions WHERE tenant_id = %s", (tenant,)
    ).fetchone()[0]
    return n == len(baskets)


def load(conn: psycopg.Connection, tenant: str, baskets: pd.DataFrame, lines: pd.DataFrame) -> None:
    """Replace the tenant's rollups with those of `baskets` and `lines` (every basket and line
    it has; columns BASKET_COLUMNS and LINE_COLUMNS, timestamps naive UTC or zone-aware)."""
    from analytics.rollups import lock_tenant

    lock_tenant(conn, tenant)
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", (tenant,))
    params = {"tenant": tenant}
    conn.execute(q.NEW_CATEGORIES, params)
    names = pd.DataFrame(
        conn.execute(
            "SELECT category_id, department, product_category FROM analytics_categories"
            " WHERE tenant_id = %s ORDER BY category_id",
            (tenant,),
        ).fetchall(),
        columns=["category_id", "department", "product_category"],
    )
    if names["category_id"].max() > MAX_CATEGORY_ID:  # pragma: no cover - taxonomies of 32k+
        raise ValueError(f"tenant {tenant} has more than {MAX_CATEGORY_ID} product categories")
    of_product = conn.execute(
        "SELECT p.product_id, c.category_id FROM products p JOIN analytics_categories c"
        " ON c.tenant_id = p.tenant_id AND c.department = coalesce(p.department, %(u)s)"
        " AND c.product_category = coalesce(p.product_category, %(u)s)"
        " WHERE p.tenant_id = %(tenant)s",
        {"tenant": tenant, "u": UNKNOWN},
    ).fetchall()
    unknown = int(
        names.loc[(names["department"] == UNKNOWN) & (names["product_category"] == UNKNOWN),
                  "category_id"].iloc[0]
    )  # fmt: skip
    rows = _rows(baskets, lines, of_product, unknown, names)
    for table in TABLES:
        frame = rows[table]
        copy_frame(conn, table, frame.assign(tenant_id=tenant), ["tenant_id", *frame.columns])


def _cents(values) -> np.ndarray:
    return np.rint(np.asarray(values, dtype="float64") * 100).astype(np.int64)


def _money(cents: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    """Integer cents as decimal(18, 2) (Arrow writes them as `12.34`, exactly)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    wide = np.empty((len(cents), 2), dtype=np.int64)  # 128-bit two's complement, little-endian
    wide[:, 0], wide[:, 1] = cents, np.where(cents < 0, -1, 0)
    arr = pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(wide)])
    return pd.arrays.ArrowExtensionArray(arr)


def _date(values) -> pd.arrays.ArrowExtensionArray:
    """Days as Arrow date32 (written `2024-03-11`; a datetime column would carry a time)."""
    return pd.arrays.ArrowExtensionArray(pa.array(np.asarray(values).astype("datetime64[D]")))


def _days(timestamps: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Business day, business-local hour and the Monday of the business day."""
    ts = pd.Series(timestamps)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    local = ts.to_numpy(dtype="datetime64[us]") - np.timedelta64(BUSINESS_DAY_HOURS, "h")
    day = local.astype("datetime64[D]")
    hour = ((local - day) // np.timedelta64(1, "h")).astype(np.int16)
    monday = day - ((day.astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday
    return day, hour, monday


def _rows(
    baskets: pd.DataFrame,
    lines: pd.DataFrame,
    of_product: list[tuple[int, int]],
    unknown: int,
    names: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    b = baskets.sort_values("transaction_id", kind="stable").reset_index(drop=True)
    txn = b["transaction_id"].to_numpy(dtype=np.int64)
    day, hour, monday = _days(b["transaction_timestamp"])
    line_txn = lines["transaction_id"].to_numpy(dtype=np.int64)
    which = np.searchsorted(txn, line_txn)  # each line's basket (every line has one)
    qty = lines["quantity"].to_numpy(dtype=np.int64)
    units = np.bincount(which, weights=qty, minlength=len(b)).astype(np.int64)
    basket = pd.DataFrame({
        "day": day, "store_id": b["store_id"].astype(str).to_numpy(), "hour": hour,
        "customer_id": b["customer_id"].to_numpy(), "revenue": _cents(b["total_sales"]),
        "units": units, "discounts": _cents(b["total_discount"]),
        "lines": b["item_count"].to_numpy(dtype=np.int64),
    })  # fmt: skip

    hourly = basket.groupby(["day", "store_id", "hour"], sort=True).agg(
        revenue=("revenue", "sum"), units=("units", "sum"), baskets=("revenue", "size"),
        discounts=("discounts", "sum"),
    ).reset_index()  # fmt: skip
    daily = basket.groupby(["day", "store_id"], sort=True).agg(
        revenue=("revenue", "sum"), units=("units", "sum"), baskets=("revenue", "size"),
        customers=("customer_id", "nunique"), discounts=("discounts", "sum"),
        lines=("lines", "sum"),
    ).reset_index()  # fmt: skip

    line = pd.DataFrame({
        "product_id": lines["product_id"].to_numpy(dtype=np.int64), "week": monday[which],
        "day": day[which], "revenue": _cents(lines["sales_value"]), "units": qty,
        "discounts": _cents(lines["retail_disc"]) + _cents(lines["coupon_disc"])
        + _cents(lines["coupon_match_disc"]),
    })  # fmt: skip
    weekly = line.groupby(["product_id", "week"], sort=True).agg(
        revenue=("revenue", "sum"), units=("units", "sum"), lines=("revenue", "size"),
        discounts=("discounts", "sum"),
    ).reset_index()  # fmt: skip

    known = np.array(of_product, dtype=np.int64).reshape(-1, 2)
    pids, cats = known[np.argsort(known[:, 0])].T
    product = line["product_id"].to_numpy()
    category = np.full(len(line), unknown, dtype=np.int64)  # a line without a catalog row
    if len(pids):
        at = np.minimum(np.searchsorted(pids, product), len(pids) - 1)
        hit = pids[at] == product
        category[hit] = cats[at[hit]]
    line["category_id"] = category
    per_category = line.groupby(["category_id", "day"], sort=True).agg(
        revenue=("revenue", "sum"), units=("units", "sum"), lines=("revenue", "size"),
    ).reset_index()  # fmt: skip
    per_category = per_category.merge(names, on="category_id", how="left")

    category_daily = per_category[["department", "product_category", "day", "revenue", "units",
                                   "lines"]]  # fmt: skip
    return {
        "sales_hourly": _typed(hourly, "day"),
        "sales_daily": _typed(daily, "day"),
        "product_weekly": _typed(weekly, "week"),
        "category_daily": _typed(category_daily, "day"),
        "basket_sets": _basket_sets(basket, txn, which, category),
    }


def _typed(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    """Cents as money, the day column as dates."""
    money = {c: _money(frame[c].to_numpy()) for c in ("revenue", "discounts") if c in frame}
    return frame.assign(**money, **{day: _date(frame[day].to_numpy())})


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hashed unique took 1.1 s on Complete Journey's lines)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _basket_sets(
    basket: pd.DataFrame, txn: np.ndarray, which: np.ndarray, category: np.ndarray
) -> pd.DataFrame:
    """Per store-day, its baskets' distinct category ids packed as rollups.BASKET_SETS packs
    them: baskets by transaction id, ids ascending, big-endian int16 (`\\x…` hex for COPY)."""
    pairs = _sorted_unique(which.astype(np.int64) << 16 | category.astype(np.int64))
    per_basket, ids = pairs >> 16, (pairs & 0xFFFF).astype(">i2")
    first = np.flatnonzero(np.r_[True, per_basket[1:] != per_basket[:-1]])
    having = per_basket[first]  # baskets with lines, in transaction-id order
    sizes = np.diff(np.r_[first, len(per_basket)])
    stores = basket["store_id"].to_numpy()[having]
    days = basket["day"].to_numpy()[having]
    order = np.lexsort((txn[having], stores, days))  # store-day, then transaction id
    rank = np.empty(len(having), dtype=np.int64)
    rank[order] = np.arange(len(having))
    # the pairs of each basket follow one another; put the baskets in (day, store, txn) order
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    moved = np.repeat(rank, sizes)
    pair_order = np.lexsort((np.arange(len(ids)) - np.repeat(starts, sizes), moved))
    ids, sizes = ids[pair_order], sizes[order].astype(">i2")
    days, stores = days[order], stores[order]
    cut = np.flatnonzero(np.r_[True, (days[1:] != days[:-1]) | (stores[1:] != stores[:-1])])
    ends = np.r_[cut[1:], len(days)]
    id_ends = np.cumsum(sizes.astype(np.int64))
    id_cut = np.r_[0, id_ends[ends - 1]]
    id_bytes, size_bytes = ids.tobytes(), sizes.tobytes()
    hexed = [
        (f"\\x{size_bytes[2 * a : 2 * e].hex()}", f"\\x{id_bytes[2 * i : 2 * j].hex()}")
        for a, e, i, j in zip(cut, ends, id_cut[:-1], id_cut[1:], strict=True)
    ]
    return pd.DataFrame({
        "day": _date(days[cut]), "store_id": stores[cut], "baskets": (ends - cut).astype(np.int64),
        "sizes": [s for s, _ in hexed], "items": [i for _, i in hexed],
    })  # fmt: skip
